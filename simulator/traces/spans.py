"""Spans as an OTLP/HTTP exporter sends them (``POST /v1/traces``): protobuf or JSON, gzip
or not, read into what barnstorm keeps of a span. The wire format is opentelemetry-proto's;
OTLP/JSON is read as its specification says (trace and span ids in hex, enums as numbers
or names, 64-bit integers as strings or numbers)."""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

#: span kinds, as OTLP numbers them.
INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER = 1, 2, 3, 4, 5
_KINDS = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": INTERNAL,
    "SPAN_KIND_SERVER": SERVER,
    "SPAN_KIND_CLIENT": CLIENT,
    "SPAN_KIND_PRODUCER": PRODUCER,
    "SPAN_KIND_CONSUMER": CONSUMER,
}
#: attributes barnstorm reads, old and new semantic conventions.
_STATEMENT = ("db.statement", "db.query.text")
_DB_SYSTEM = ("db.system", "db.system.name")
_PATH = ("http.target", "url.path")
_ROUTE = ("http.route",)


class SpansRefused(ValueError):
    """A body that is not an OTLP trace export (the receiver answers 400 with it)."""


@dataclass(slots=True)
class Span:
    """What barnstorm keeps of a span: enough to join it, time it and read its query."""

    trace_id: bytes
    span_id: bytes
    parent_id: bytes
    kind: int
    start: int  # ns since the epoch
    end: int
    name: str
    service: str
    #: the database statement (db spans), else None.
    statement: str | None = None
    db: bool = False
    #: the server span's path and route, when it says them.
    path: str | None = None
    route: str | None = None

    @property
    def duration(self) -> int:
        return max(self.end - self.start, 0)


def read_body(body: bytes, content_type: str, encoding: str, limit: int) -> list[Span]:
    """The spans of one export request; ``SpansRefused`` when it is none."""
    if encoding.strip().lower() == "gzip":
        try:
            decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            body = decompressor.decompress(body, limit + 1)
        except (zlib.error, OSError, EOFError) as exc:
            raise SpansRefused(f"not gzip: {exc}") from None
        if len(body) > limit:
            raise SpansRefused(f"more than {limit:,} bytes once unzipped")
    elif encoding.strip() not in ("", "identity"):
        raise SpansRefused(f"Content-Encoding {encoding!r}: expected gzip or none")
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        return _from_json(body)
    if kind in ("application/x-protobuf", "application/protobuf", ""):
        return _from_protobuf(body)
    raise SpansRefused(
        f"Content-Type {content_type!r}: expected application/x-protobuf or application/json"
    )


def _from_protobuf(body: bytes) -> list[Span]:
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except Exception as exc:  # protobuf's DecodeError, from the C or the Python parser
        raise SpansRefused(f"not an OTLP protobuf trace export: {exc}") from None
    spans: list[Span] = []
    for resource_spans in request.resource_spans:
        service = _pb_string(resource_spans.resource.attributes, ("service.name",)) or "?"
        for scope_spans in resource_spans.scope_spans:
            for pb in scope_spans.spans:
                span = Span(
                    bytes(pb.trace_id),
                    bytes(pb.span_id),
                    bytes(pb.parent_span_id),
                    int(pb.kind),
                    int(pb.start_time_unix_nano),
                    int(pb.end_time_unix_nano),
                    pb.name,
                    service,
                )
                _attributes(span, ((kv.key, kv) for kv in pb.attributes), _pb_value)
                spans.append(span)
    return spans


def _pb_value(kv: KeyValue) -> Any:
    value = kv.value
    which = value.WhichOneof("value")
    return getattr(value, which) if which else None


def _pb_string(attributes: Any, keys: tuple[str, ...]) -> str | None:
    for kv in attributes:
        if kv.key in keys:
            found = _pb_value(kv)
            return str(found) if found is not None else None
    return None


def _from_json(body: bytes) -> list[Span]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise SpansRefused(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SpansRefused("not an OTLP JSON trace export: expected an object")
    spans: list[Span] = []
    try:
        for resource_spans in _list(data, "resourceSpans"):
            resource = resource_spans.get("resource") or {}
            service = _json_attribute(resource.get("attributes"), ("service.name",)) or "?"
            for scope_spans in _list(resource_spans, "scopeSpans"):
                for item in _list(scope_spans, "spans"):
                    kind = item.get("kind", 0)
                    span = Span(
                        _hex(item.get("traceId"), 16, "traceId"),
                        _hex(item.get("spanId"), 8, "spanId"),
                        _hex(item.get("parentSpanId") or "", 8, "parentSpanId", empty=True),
                        _KINDS.get(kind, 0) if isinstance(kind, str) else int(kind),
                        int(item.get("startTimeUnixNano", 0)),
                        int(item.get("endTimeUnixNano", 0)),
                        str(item.get("name", "")),
                        service,
                    )
                    attributes = item.get("attributes") or []
                    if not isinstance(attributes, list):
                        raise SpansRefused("attributes: expected a list")
                    pairs = ((a.get("key"), a) for a in attributes if isinstance(a, dict))
                    _attributes(span, pairs, _json_value)
                    spans.append(span)
    except (TypeError, ValueError, AttributeError) as exc:
        raise SpansRefused(f"not an OTLP JSON trace export: {exc}") from None
    return spans


def _list(data: Any, key: str) -> list[Any]:
    found = (data.get(key) or []) if isinstance(data, dict) else None
    if not isinstance(found, list):
        raise SpansRefused(f"{key}: expected a list")
    return [item for item in found if isinstance(item, dict)]


def _hex(value: Any, size: int, what: str, empty: bool = False) -> bytes:
    if empty and value == "":
        return b""
    if not isinstance(value, str) or len(value) != size * 2:
        raise SpansRefused(f"{what}: expected {size * 2} hex digits")
    return bytes.fromhex(value)


def _json_value(attribute: dict[str, Any]) -> Any:
    value = attribute.get("value") or {}
    for key in ("stringValue", "intValue", "doubleValue", "boolValue"):
        if key in value:
            return value[key]
    return None


def _json_attribute(attributes: Any, keys: tuple[str, ...]) -> str | None:
    for attribute in attributes or []:
        if isinstance(attribute, dict) and attribute.get("key") in keys:
            found = _json_value(attribute)
            return str(found) if found is not None else None
    return None


def _attributes(span: Span, pairs: Any, value_of: Any) -> None:
    for key, raw in pairs:
        if key in _STATEMENT:
            found = value_of(raw)
            span.statement = str(found) if found is not None else None
        elif key in _DB_SYSTEM:
            span.db = True
        elif key in _PATH:
            found = value_of(raw)
            span.path = str(found).split("?")[0] if found is not None else None
        elif key in _ROUTE:
            found = value_of(raw)
            span.route = str(found) if found is not None else None
    if span.statement is not None:
        span.db = True


#: literals: strings in single quotes, hex and decimal numbers. Double quotes are SQL's
#: quoted identifiers (Django and most ORMs quote every table and column), never values.
_LITERALS = re.compile(
    r"""'(?:[^']|'')*'|\b0x[0-9a-f]+\b|(?<![\w$"])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?\b""",
    re.IGNORECASE,
)
_LISTS = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")
_PLACEHOLDERS = re.compile(r"\$\d+|%s|%\(\w+\)s|:\w+")
_SPACE = re.compile(r"\s+")


def normalise(statement: str) -> str:
    """A statement with its literals and bound parameters as ``?``, lists of them as one,
    whitespace folded: the same query with other values reads the same."""
    text = _LITERALS.sub("?", statement[:4000])
    text = _PLACEHOLDERS.sub("?", text)
    text = _LISTS.sub("(?)", text)
    return _SPACE.sub(" ", text).strip()[:300]
