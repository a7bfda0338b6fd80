"""The HTTP clients barnstorm's ingest transport can use, by name (``--http-client``): the
vocabulary the configuration, the CLI and the transport share, apart from the clients."""

from __future__ import annotations

from typing import Literal

ClientName = Literal["auto", "aiohttp", "httpx"]
HTTP_CLIENTS: tuple[ClientName, ...] = ("auto", "aiohttp", "httpx")
