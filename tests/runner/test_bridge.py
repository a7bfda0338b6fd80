"""The Locust bridge's lines: every settled message a result, in columns, and the target's
Server-Timing, for Locust's side."""

from __future__ import annotations

import io
import json

from simulator.messages import DUPLICATE, Message, Outcome
from simulator.metrics.metrics import Metrics
from simulator.metrics.server_timing import ServerTimings
from simulator.runner.bridge import ResultStream


def test_server_timing_reaches_the_locust_side_by_request_name() -> None:
    """HTTP ingest's Server-Timing, told to the metrics, goes out in the next line under
    the request name Locust shows (``ingest cough_monitor``), once: merged on the Locust
    side it gives the figures the run's own report has."""
    metrics = Metrics(("cough_monitor", "gateway"))
    out = io.BytesIO()
    stream = ResultStream(metrics, "http", out)
    for queries in (1, 1, 3):
        metrics.server_timing(0, f'db;dur=2;desc="{queries} queries", app;dur=1', 900)
    metrics.server_timing(1, 'db;dur=1;desc="1 query"', 300)
    stream.flush()
    stream.flush()
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert set(first["timing"]) == {"ingest cough_monitor", "ingest gateway"}
    assert "timing" not in second
    locust_side = ServerTimings()
    locust_side.merge(first["timing"])
    summary = locust_side.summary()["ingest cough_monitor"]
    assert summary == {**metrics.server_timings.summary()["cough_monitor"]}
    assert summary["queries_per_request"] == round(5 / 3, 2)


def _message(type_code: int, seq: int, payload: bytes, flags: int = 0) -> Message:
    message = Message(seq, type_code, 0, "summary", seq, "t/d", payload, None)
    message.flags = flags
    return message


def test_every_settled_message_is_one_result_in_the_next_line() -> None:
    """Messages written locally (delivered, no latency), acknowledged and failed each come
    out once, their device type, latency, size and error in the same row of the columns;
    a duplicate the fleet sent on top is no result of its own."""
    metrics = Metrics(("climate_node", "cough_monitor"))
    out = io.BytesIO()
    stream = ResultStream(metrics, "mqtt", out)
    written = [_message(k % 2, k, b"x" * (10 + k)) for k in range(5)]
    metrics.messages_written([*written, _message(1, 99, b"dup", DUPLICATE)])
    acked, failed = _message(1, 5, b"y" * 40), _message(0, 6, b"z" * 7)
    metrics.messages_sent([acked, failed])
    metrics.message_done(acked, Outcome.ACKNOWLEDGED)
    metrics.message_done(failed, Outcome.FAILED, "timeout")
    stream.flush()
    line = json.loads(out.getvalue())
    assert line["transport"] == "MQTT"
    assert line["types"] == ["climate_node", "cough_monitor"]
    results = line["results"]
    rows = list(
        zip(results["type"], results["latency_ms"], results["bytes"], results["error"], strict=True)
    )
    assert rows[:5] == [(k % 2, 0.0, 10 + k, None) for k in range(5)]
    (code, latency, size, error), (code2, latency2, size2, error2) = rows[5:]
    assert (code, size, error) == (1, 40, None)
    assert latency is not None
    assert latency >= 0.0
    assert (code2, latency2, size2, error2) == (0, None, 7, "timeout")
    totals = metrics.totals()
    assert (totals.sent, totals.acknowledged, totals.failed) == (7, 6, 1)
    assert totals.bytes == sum(10 + k for k in range(5)) + 3 + 40 + 7
