"""The reference backend's access log: one JSON line per HTTP request, with its trace
context, so a test or a user can see which requests a run made and how they were traced."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson


class AccessLog:
    """ASGI middleware: one JSON line per HTTP request, with its trace context::

    {"t": 1764301234.5, "method": "GET", "path": "/api/farms", "status": 200,
     "ms": 3.1, "traceparent": "00-...", "baggage": "barnstorm.run=...", ...}
    """

    HEADERS = (b"traceparent", b"baggage", b"sentry-trace")

    def __init__(self, app: Any, path: Path) -> None:
        self.app = app
        self.file = path.open("ab", buffering=0)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.time()
        status = 0

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            line: dict[str, Any] = {
                "t": round(started, 4),
                "method": scope["method"],
                "path": scope["path"],
                "query": scope["query_string"].decode("latin-1"),
                "status": status,
                "ms": round((time.time() - started) * 1000, 2),
            }
            for name, value in scope["headers"]:
                if name in self.HEADERS:
                    line[name.decode()] = value.decode("latin-1")
            self.file.write(orjson.dumps(line) + b"\n")
