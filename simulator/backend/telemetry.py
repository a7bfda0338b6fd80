"""The reference backend's own traces (``simulate serve --otlp URL``): the real OpenTelemetry
SDK, its ASGI (Starlette) instrumentation for every request, its SQLite and psycopg
instrumentations for every query, exported over OTLP/HTTP to URL in batches. A request
that carries a ``traceparent`` continues its trace, as any instrumented backend does; an
MQTT message does when its MQTT 5 user properties carry one (:func:`consuming`).

The SDK comes with the ``otel`` extra (``pip install 'barnstorm[otel]'``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from starlette.applications import Starlette

from simulator.errors import ConfigError

SERVICE = "barnstorm-reference-backend"


class Telemetry:
    """The tracer provider of the backend, and what it instrumented."""

    def __init__(self, url: str, service: str = SERVICE) -> None:
        try:
            from opentelemetry import trace
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
            from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:
            raise ConfigError(
                "--otlp",
                f"the OpenTelemetry SDK is not installed ({exc.name}): "
                "pip install 'barnstorm[otel]'",
            ) from None
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                "--otlp", f'expected an OTLP/HTTP URL such as http://host:4318, got "{url}"'
            )
        endpoint = url.rstrip("/")
        if not endpoint.endswith("/v1/traces"):
            endpoint += "/v1/traces"
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        trace.set_tracer_provider(self.provider)
        # Before the store connects: the instrumentations wrap connect().
        SQLite3Instrumentor().instrument(tracer_provider=self.provider)
        PsycopgInstrumentor().instrument(tracer_provider=self.provider)
        self.tracer = self.provider.get_tracer("simulator.backend")

    def instrument(self, app: Starlette) -> None:
        from opentelemetry.instrumentation.starlette import StarletteInstrumentor

        StarletteInstrumentor.instrument_app(app, tracer_provider=self.provider)

    @contextlib.contextmanager
    def consuming(self, topic: str, traceparent: str | None) -> Iterator[Any]:
        """A consumer span for one MQTT message, continuing the publisher's trace when its
        ``traceparent`` came along (else a trace of its own, as the sampler decides)."""
        from opentelemetry.trace import SpanKind
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        context = (
            TraceContextTextMapPropagator().extract({"traceparent": traceparent})
            if traceparent
            else None
        )
        with self.tracer.start_as_current_span(
            "mqtt ingest",
            context=context,
            kind=SpanKind.CONSUMER,
            attributes={"messaging.system": "mqtt", "messaging.destination.name": topic},
        ) as span:
            yield span

    def shutdown(self) -> None:
        """Export what is left (the last batch), then stop."""
        self.provider.shutdown()
