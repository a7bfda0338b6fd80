"""The reference backend explains itself: every HTTP response carries a W3C
``Server-Timing`` header saying where its time went::

    Server-Timing: db;dur=12.31;desc="4 queries", app;dur=1.05, total;dur=13.36

``db`` is the time spent in database statements and how many ran, ``app`` the rest of
the request's time in the backend, ``total`` the whole; ingest adds ``store`` (validating
and storing the messages, its statements included). The same header Django, Rails,
Starlette and Spring middlewares send, so barnstorm reads any backend's the same way.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RequestTiming:
    """What one request spent: database time and statements, and named segments."""

    db_seconds: float = 0.0
    queries: int = 0
    segments: dict[str, float] = field(default_factory=dict)

    def header(self, total_seconds: float) -> str:
        db_ms = self.db_seconds * 1000.0
        total_ms = total_seconds * 1000.0
        noun = "query" if self.queries == 1 else "queries"
        parts = [f'db;dur={db_ms:.2f};desc="{self.queries} {noun}"']
        parts += [f"{name};dur={seconds * 1000.0:.2f}" for name, seconds in self.segments.items()]
        parts.append(f"app;dur={max(total_ms - db_ms, 0.0):.2f}")
        parts.append(f"total;dur={total_ms:.2f}")
        return ", ".join(parts)


_CURRENT: ContextVar[RequestTiming | None] = ContextVar("barnstorm_request_timing", default=None)


def record_query(seconds: float) -> None:
    """Count one database statement of ``seconds`` against the current request, if any."""
    timing = _CURRENT.get()
    if timing is not None:
        timing.db_seconds += seconds
        timing.queries += 1


@contextlib.contextmanager
def segment(name: str) -> Iterator[None]:
    """Time a named part of the current request (``store`` for ingest)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timing = _CURRENT.get()
        if timing is not None:
            timing.segments[name] = timing.segments.get(name, 0.0) + (time.perf_counter() - started)


class ServerTiming:
    """ASGI middleware adding the ``Server-Timing`` header to every HTTP response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        timing = RequestTiming()
        token = _CURRENT.set(timing)
        started = time.perf_counter()

        async def send_with_timing(message: Any) -> None:
            if message["type"] == "http.response.start":
                header = timing.header(time.perf_counter() - started)
                headers = [*message.get("headers", ()), (b"server-timing", header.encode())]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_timing)
        finally:
            _CURRENT.reset(token)
