"""The backend's spans read from the wire and folded per flow: joins by trace id alone,
N+1 from repeated statements, uncovered time, and counts that always add up."""

from __future__ import annotations

import gzip

import pytest

from simulator.report.traces import by_request, n_plus_one, traces_section
from simulator.traces.context import TraceContext, read_trace_id, tag
from simulator.traces.fold import N_PLUS_ONE_REPEATS, TraceFolder
from simulator.traces.spans import SpansRefused, normalise, read_body
from tests.traces.otlp import MS, otlp_json, protobuf, request_trace, trace_id

RUN = "run-fold"
ROOM = "GET /api/farms/[id]/rooms/[id]"
LIMIT = 1 << 20


def _query(i: int) -> str:
    return f"SELECT value FROM readings WHERE device_id = 'dev-{i}' AND ts > {1700000000 + i}"


def test_protobuf_json_and_gzip_read_the_same_spans() -> None:
    """One export as protobuf, as gzip'd protobuf and as OTLP/JSON reads the same spans:
    ids, kinds, times, the route and the statement."""
    spans = request_trace(trace_id(RUN, "room_detail", ROOM), statements=[_query(1)])
    bodies = [
        read_body(protobuf(spans), "application/x-protobuf", "", LIMIT),
        read_body(gzip.compress(protobuf(spans)), "application/x-protobuf", "gzip", LIMIT),
        read_body(otlp_json(spans), "application/json", "", LIMIT),
    ]
    for read in bodies:
        assert [(s.trace_id, s.span_id, s.kind, s.start, s.end) for s in read] == [
            (s.trace_id, s.span_id, s.kind, s.start, s.end) for s in spans
        ]
        assert read[0].route == "/api/farms/{farm_id}"
        assert read[0].service == "farm-api"
        assert read[1].db
        assert read[1].statement == _query(1)


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "why"),
    [
        (b"\xff\xfe not protobuf", "application/x-protobuf", "", "protobuf"),
        (b"{not json", "application/json", "", "not JSON"),
        (b'{"resourceSpans": 3}', "application/json", "", "expected a list"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
            "application/json",
            "",
            "traceId",
        ),
        (b"plain", "application/x-protobuf", "gzip", "not gzip"),
        (b"plain", "application/x-protobuf", "br", "Content-Encoding"),
        (gzip.compress(b"\0" * (LIMIT + 10)), "application/x-protobuf", "gzip", "unzipped"),
        (b"<xml/>", "text/xml", "", "Content-Type"),
    ],
)
def test_a_body_that_is_no_trace_export_is_refused_with_its_reason(
    body: bytes, content_type: str, encoding: str, why: str
) -> None:
    """Garbage, wrong JSON shapes, bad gzip, a zip bomb and unknown types are refused (the
    receiver answers 400 with the reason), never a crash."""
    with pytest.raises(SpansRefused, match=why):
        read_body(body, content_type, encoding, LIMIT)


def test_statements_with_other_values_normalise_to_one() -> None:
    """Literals, bound parameters and IN lists become ``?``: the same query, other values;
    quoted identifiers (Django quotes every table and column) stay as they are."""
    assert normalise(_query(1)) == normalise(_query(2))
    assert normalise("SELECT * FROM t WHERE id IN (1, 2, 3)") == normalise(
        "SELECT * FROM t WHERE id IN ($1,$2)"
    )
    assert normalise("SELECT 1") != normalise("SELECT name FROM farms")
    django = (
        'SELECT "foreign_reading"."id", "foreign_reading"."value" FROM "foreign_reading" '
        'WHERE "foreign_reading"."sensor_id" = %s ORDER BY "foreign_reading"."at" DESC LIMIT 1'
    )
    assert normalise(django) == (
        'SELECT "foreign_reading"."id", "foreign_reading"."value" FROM "foreign_reading" '
        'WHERE "foreign_reading"."sensor_id" = ? ORDER BY "foreign_reading"."at" DESC LIMIT ?'
    )


def test_spans_join_their_flow_and_every_span_is_counted() -> None:
    """Spans of the run's traces join the flow their trace id names; spans of other runs
    and of the backend's own traffic join nothing and are counted by service; received is
    always joined plus unjoined."""
    folder = TraceFolder(tag(RUN, 2))
    ours = [
        request_trace(trace_id(RUN, "room_detail", ROOM), statements=[_query(1)]) for _ in range(5)
    ]
    theirs = request_trace(trace_id("another-run", "room_detail", ROOM), statements=[_query(1)])
    for spans in ours:
        folder.add(read_body(protobuf(spans), "", "", LIMIT))
    folder.add(read_body(protobuf(theirs, service="cron"), "", "", LIMIT))
    folder.settle(everything=True)
    summary = folder.summary()
    assert summary["spans"] == {"received": 12, "joined": 10, "unjoined": 2}
    assert summary["unjoined_services"] == {"cron": 2}
    section = traces_section(summary, [("room_detail", ROOM)], {ROOM: 5}, "127.0.0.1:1")
    (flow,) = section["flows"]
    assert (flow["flow"], flow["name"], flow["traces"], flow["trace_share"]) == (
        "room_detail",
        ROOM,
        5,
        1.0,
    )
    assert flow["db_spans_per_request"] == 1.0
    assert flow["route"] == "/api/farms/{farm_id}"


def test_a_statement_repeated_in_one_request_is_an_n_plus_one_with_its_text() -> None:
    """A request whose trace holds the same statement (other values) N_PLUS_ONE_REPEATS
    times or more is an N+1, named with its normalised statement and counts; a request of
    few queries is not."""
    folder = TraceFolder(tag(RUN, 2))
    repeats = N_PLUS_ONE_REPEATS + 5
    for _ in range(3):
        spans = request_trace(
            trace_id(RUN, "room_detail", ROOM), statements=[_query(i) for i in range(repeats)]
        )
        folder.add(read_body(protobuf(spans), "", "", LIMIT))
    for _ in range(3):
        spans = request_trace(
            trace_id(RUN, "farm_list", "GET /api/farms"),
            statements=["SELECT * FROM farms", "SELECT count(*) FROM devices"],
        )
        folder.add(read_body(protobuf(spans), "", "", LIMIT))
    folder.settle(everything=True)
    pairs = [("room_detail", ROOM), ("farm_list", "GET /api/farms")]
    section = traces_section(folder.summary(), pairs, {}, "x")
    (found,) = n_plus_one(section["flows"])
    assert found["name"] == ROOM
    assert found["statement"] == normalise(_query(0))
    assert (found["max_repeats"], found["traces_repeating"], found["traces"]) == (repeats, 3, 3)
    assert by_request(section)[ROOM]["db_spans_per_request"] == repeats


def test_one_long_stretch_in_no_span_is_a_blind_spot_many_small_gaps_are_not() -> None:
    """A 40 ms request with 30 ms in one stretch no child covers (an uninstrumented call) is
    a blind spot; a 30 ms request whose ten queries leave ten small gaps (a framework's own
    work) is as uncovered but is not; one whose children cover it all is 0 % uncovered."""
    folder = TraceFolder(tag(RUN, 2))
    blind = request_trace(
        trace_id(RUN, "weather", "GET /weather"),
        statements=["SELECT 1"],
        server_ms=40,
        db_ms=2,
        uncovered_ms=30,
    )
    orm = request_trace(
        trace_id(RUN, "pens", "GET /pens"), statements=["SELECT 1"] * 10, server_ms=30, db_ms=1
    )
    for number, span in enumerate(orm[1:]):  # a query every 3 ms: 2 ms of Python between
        span.start = orm[0].start + number * 3 * MS + 2 * MS
        span.end = span.start + MS
    covered = request_trace(
        trace_id(RUN, "farm", "GET /farm"), statements=["SELECT 1"] * 4, server_ms=8, db_ms=2
    )
    folder.add(read_body(protobuf(blind + orm + covered), "", "", LIMIT))
    folder.settle(everything=True)
    pairs = [("weather", "GET /weather"), ("pens", "GET /pens"), ("farm", "GET /farm")]
    section = traces_section(folder.summary(), pairs, {}, "x")
    flows = {f["name"]: f for f in section["flows"]}
    assert flows["GET /weather"]["gap_ms_mean"] == 30.0
    assert flows["GET /pens"]["uncovered_share"] == pytest.approx(2 / 3, abs=0.01)
    assert flows["GET /pens"]["gap_ms_mean"] == 2.0
    assert flows["GET /farm"]["uncovered_share"] == 0.0
    assert [b["name"] for b in section["blind"]] == ["GET /weather"]


def test_a_trace_id_names_its_run_flow_and_request_and_marks_the_sampled_share() -> None:
    """The headers' trace id reads back as the flow and request it was made for; under
    sample 0 no request is marked sampled and sentry-trace leaves the decision to the
    SDK; under sample 1 every one is."""
    none = TraceContext(RUN, sentry=True, sample=0.0).headers("room_detail", ROOM, "v1")
    trace, _, flags = none["traceparent"][3:].split("-")
    assert flags == "00"
    assert none["sentry-trace"].count("-") == 1
    key = read_trace_id(bytes.fromhex(trace), tag(RUN, 2))
    assert key is not None
    assert key == read_trace_id(trace_id(RUN, "room_detail", ROOM), tag(RUN, 2))
    assert "barnstorm.view=v1" in none["baggage"]
    every = TraceContext(RUN, sentry=True, sample=1.0).headers("room_detail", ROOM)
    assert every["traceparent"].endswith("-01")
    assert every["sentry-trace"].endswith("-1")
    assert TraceContext(RUN, sample=0.0).traceparent("publish", "publish gateway") is None
