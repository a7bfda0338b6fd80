"""Trace context on MQTT 5 publishes (``--trace-mqtt``): a ``traceparent`` user property on
the sampled share, so the backend's consumer can continue the trace, and, with
``--otlp-export``, barnstorm's own client span of each from leaving to its PUBACK."""

from __future__ import annotations

import time
from collections.abc import Sequence

from simulator.messages import Message
from simulator.traces.context import TraceContext
from simulator.transports.mqtt.v5 import user_properties


class PublishTracing:
    """What a connection's publishes carry of their traces, and their client spans."""

    def __init__(self, trace: TraceContext, type_names: Sequence[str], url: str) -> None:
        self.trace = trace
        self.names = [f"publish {name}" for name in type_names]
        self.url = url

    def _name(self, message: Message) -> str:
        code = message.type_code
        return self.names[code] if code < len(self.names) else "publish"

    def mark(self, messages: list[Message], v5: bool) -> None:
        """A ``traceparent`` on the sampled share of ``messages`` (decided first and
        cheaply: the rest carry nothing): an MQTT 5 user property, or below MQTT 5 the
        payload field ``--trace-envelope`` named; when barnstorm exports its own spans, the
        instant each left."""
        trace = self.trace
        exporting = trace.exporter is not None
        field = None if v5 or trace.envelope is None else trace.envelope.encode()
        for message in messages:
            parent = trace.traceparent("publish", self._name(message))
            if parent is None:
                continue
            if field is None:
                message.properties = user_properties([("traceparent", parent)])
            elif message.payload.endswith(b"}"):  # a JSON object: the field goes last
                message.payload = (
                    message.payload[:-1] + b',"' + field + b'":"' + parent.encode() + b'"}'
                )
            if exporting:
                message.trace = (parent, time.time_ns())

    def done(self, messages: list[Message], error: str | None) -> None:
        """The client spans of the traced ``messages``, now acknowledged (or refused)."""
        exporter = self.trace.exporter
        if exporter is None:
            return
        now = time.time_ns()
        for message in messages:
            if message.trace is not None:
                parent, started = message.trace
                exporter.add(
                    parent, self._name(message), started, now, method="PUBLISH", url=self.url,
                    status=None, error=error,
                )  # fmt: skip
