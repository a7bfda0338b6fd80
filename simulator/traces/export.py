"""barnstorm's own side of each trace (``--otlp-export URL``): a client span per sampled
request, sent over OTLP/HTTP (protobuf, built with opentelemetry-proto) to the team's
collector, Jaeger, Tempo or Sentry, where it meets the backend's spans of the same trace.

The span's trace and span ids are those of the ``traceparent`` the request carried, so
the backend's server span is its child. Spans are queued (at most ``MAX_QUEUE``; past it
they are dropped and counted, never held up a request) and sent from a thread of their
own every ``EVERY_S`` seconds or ``BATCH`` spans; :meth:`ClientSpans.close` sends the rest.
"""

from __future__ import annotations

import contextlib
import threading
import urllib.error
import urllib.request
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from simulator import __version__
from simulator.errors import ConfigError
from simulator.redact import redact_url

MAX_QUEUE = 50_000
BATCH = 512
EVERY_S = 2.0
CLIENT = 3


def export_url(text: str, flag: str = "--otlp-export") -> str:
    """The OTLP/HTTP traces endpoint of ``text`` (``http://host:4318`` gets ``/v1/traces``)."""
    url = text.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        valid = False
    if not valid:
        raise ConfigError(
            flag, f'expected an OTLP/HTTP URL such as http://127.0.0.1:4318, got "{text}"'
        )
    return url if url.endswith("/v1/traces") else url + "/v1/traces"


def _attribute(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


class ClientSpans:
    """The queue and the sending thread of one process's client spans."""

    def __init__(self, url: str, run_id: str, service: str = "barnstorm") -> None:
        self.url = export_url(url)
        self.resource = Resource(
            attributes=[
                _attribute("service.name", service),
                _attribute("service.version", __version__),
                _attribute("barnstorm.run", run_id),
            ]
        )
        self.scope = InstrumentationScope(name="barnstorm", version=__version__)
        self.queue: deque[Span] = deque()
        self.exported = 0
        self.dropped = 0
        self.failed = 0
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="barnstorm-otlp-export")
        self._thread.daemon = True
        self._thread.start()

    def add(
        self,
        traceparent: str,
        name: str,
        start_ns: int,
        end_ns: int,
        *,
        method: str,
        url: str,
        status: int | None,
        error: str | None,
    ) -> None:
        """A client span for the request that carried ``traceparent`` (nothing unless it
        was marked sampled)."""
        parts = traceparent.split("-")
        if len(parts) != 4 or parts[3] != "01":
            return
        if len(self.queue) >= MAX_QUEUE:
            self.dropped += 1
            return
        attributes = [
            _attribute("http.request.method", method),
            _attribute("url.full", redact_url(url)),
        ]
        if status:
            attributes.append(_attribute("http.response.status_code", status))
        failed = error is not None or (status is not None and status >= 400)
        if error is not None:
            attributes.append(_attribute("error.type", error[:200]))
        self.queue.append(
            Span(
                trace_id=bytes.fromhex(parts[1]),
                span_id=bytes.fromhex(parts[2]),
                name=name,
                kind=CLIENT,  # type: ignore[arg-type]
                start_time_unix_nano=start_ns,
                end_time_unix_nano=max(end_ns, start_ns),
                attributes=attributes,
                status=Status(code=2 if failed else 1),  # type: ignore[arg-type]
            )
        )
        if len(self.queue) >= BATCH:
            self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(EVERY_S)
            self._wake.clear()
            self._send_all()
        self._send_all()

    def _send_all(self) -> None:
        while self.queue:
            batch = [self.queue.popleft() for _ in range(min(BATCH, len(self.queue)))]
            request = ExportTraceServiceRequest(
                resource_spans=[
                    ResourceSpans(
                        resource=self.resource,
                        scope_spans=[ScopeSpans(scope=self.scope, spans=batch)],
                    )
                ]
            )
            self._post(request.SerializeToString(), len(batch))

    def _post(self, body: bytes, count: int) -> None:
        request = urllib.request.Request(
            self.url,
            data=body,
            headers={"Content-Type": "application/x-protobuf"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                answer.read()
            self.exported += count
        except (OSError, urllib.error.URLError) as exc:
            self.failed += count
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]

    def close(self, timeout: float = 15.0) -> dict[str, Any]:
        """Send what is queued (at most ``timeout`` seconds), stop, and say what went."""
        self._stop.set()
        self._wake.set()
        with contextlib.suppress(RuntimeError):
            self._thread.join(timeout)
        return self.counts()

    def counts(self) -> dict[str, Any]:
        return {
            "url": redact_url(self.url),
            "exported": self.exported,
            "dropped": self.dropped,
            "failed": self.failed,
            "last_error": self.last_error,
        }
