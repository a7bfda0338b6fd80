"""The Locust bridge's lines carry the target's Server-Timing to Locust's side."""

from __future__ import annotations

import io
import json

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
