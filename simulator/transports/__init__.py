"""Transports: where the engine's messages go, behind one small contract
(:class:`~simulator.transports.base.Transport`: connect, send, close, ``async with``).

``mqtt/`` (barnstorm's own publish client), ``http`` (aiohttp, httpx), ``file`` (JSON
lines) and ``memory`` (tests) implement it; ``faultproxy`` puts network faults between a
transport and its target, and ``readback`` asks a target what it stored. Library errors
become barnstorm's own error types here, at the boundary.
"""
