"""The reference backend, barnstorm's embedded default target: an ASGI app with MQTT and
HTTP ingest and a dashboard API, its store, and the launchers of the embedded broker and
backend as child processes. Only this package imports starlette, uvicorn or psycopg.
"""
