"""MQTT: the settings and transport base, the packets (3.1.1, and MQTT 5's properties and
reason codes), barnstorm's own publish client (a transport of links), and the subscribers
(the reference backend's ingest, and the independent observer of ``--verify``).
"""
