"""OTLP export requests built with opentelemetry-proto, as a backend's exporter sends them,
for the receiver's tests: traces of a run's flows, and of traffic that is not the run's."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from simulator.traces.context import tag

MS = 1_000_000
T0 = 1_800_000_000 * 1_000_000_000


@dataclass
class FakeSpan:
    trace_id: bytes
    span_id: bytes
    parent: bytes
    kind: int
    start: int
    end: int
    name: str
    attributes: dict[str, str] = field(default_factory=dict)


def trace_id(run: str, flow: str, name: str) -> bytes:
    """A trace id as barnstorm makes it for a request ``name`` of ``flow`` in ``run``."""
    return tag(run, 2) + tag(flow, 2) + tag(name, 4) + os.urandom(8)


def request_trace(
    trace: bytes,
    *,
    statements: list[str] | None = None,
    server_ms: float = 10.0,
    db_ms: float = 0.5,
    uncovered_ms: float = 0.0,
    route: str = "/api/farms/{farm_id}",
) -> list[FakeSpan]:
    """A server span and its database children, one after another from its start; with
    ``uncovered_ms``, that much of the server's time is in no child (an uninstrumented
    call)."""
    start = T0
    server = FakeSpan(
        trace,
        os.urandom(8),
        os.urandom(8),
        2,
        start,
        start + int(server_ms * MS),
        "GET",
        {"http.route": route, "url.path": route.replace("{farm_id}", "7")},
    )
    spans = [server]
    at = start + int(uncovered_ms * MS)
    for statement in statements or []:
        spans.append(
            FakeSpan(
                trace,
                os.urandom(8),
                server.span_id,
                3,
                at,
                at + int(db_ms * MS),
                "SELECT",
                {"db.system": "sqlite", "db.statement": statement},
            )
        )
        at += int(db_ms * MS)
    return spans


def protobuf(spans: list[FakeSpan], service: str = "farm-api") -> bytes:
    pb_spans = [
        PbSpan(
            trace_id=s.trace_id,
            span_id=s.span_id,
            parent_span_id=s.parent,
            kind=s.kind,  # type: ignore[arg-type]
            start_time_unix_nano=s.start,
            end_time_unix_nano=s.end,
            name=s.name,
            attributes=[
                KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in s.attributes.items()
            ],
        )
        for s in spans
    ]
    resource = Resource(
        attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))]
    )
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=pb_spans)])]
    )
    body: bytes = request.SerializeToString()
    return body


def otlp_json(spans: list[FakeSpan], service: str = "farm-api") -> bytes:
    """The same spans as OTLP/JSON: ids in hex, kinds as names, times as strings."""
    kinds = {2: "SPAN_KIND_SERVER", 3: "SPAN_KIND_CLIENT"}
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                    },
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": s.trace_id.hex(),
                                    "spanId": s.span_id.hex(),
                                    "parentSpanId": s.parent.hex(),
                                    "kind": kinds.get(s.kind, s.kind),
                                    "startTimeUnixNano": str(s.start),
                                    "endTimeUnixNano": str(s.end),
                                    "name": s.name,
                                    "attributes": [
                                        {"key": k, "value": {"stringValue": v}}
                                        for k, v in s.attributes.items()
                                    ],
                                }
                                for s in spans
                            ]
                        }
                    ],
                }
            ]
        }
    ).encode()
