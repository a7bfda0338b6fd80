"""A run over several processes: the fleet split by farm, one target, one merged report
and one delivery accounting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator.exitcodes import EXIT_OK
from simulator.runner.shards import merge_rows
from tests.conftest import READBACK_HEADERS, Backends
from tests.helpers import simulate


@pytest.mark.slow
def test_the_embedded_default_over_two_processes_delivers_every_message(tmp_path: Path) -> None:
    """`simulate --processes 2` on the embedded default: one broker and one backend for both
    shards, every farm run once, and the backend's read-back (not barnstorm's books) finds
    every acknowledged message; latency and loop lag come merged, the time series too."""
    report = tmp_path / "report.json"
    args = ("--farms", "6", "--duration", "12m", "--speed", "60", "--quiet")
    result = simulate(*args, "--processes", "2", "--report", str(report))
    assert result.returncode == EXIT_OK, result.stderr
    data = json.loads(report.read_text())
    assert data["time"]["processes"] == 2
    assert data["fleet"]["devices_in_run"] == data["fleet"]["devices"]  # every farm, once
    totals, accounting = data["totals"], data["accounting"]
    assert totals["sent"] > 0
    assert accounting["expected"] == accounting["received"] == totals["acknowledged"]
    assert accounting["lost"] == accounting["unexpected"] == 0
    assert data["target"]["embedded_broker"] is not None
    assert 0 < totals["latency_ms"]["p50"] <= totals["latency_ms"]["p99"]
    assert len(data["time"]["loop_lag_ms_by_process"]) == 2
    assert data["timeseries"][-1]["sent"] == totals["sent"]


def test_shards_that_started_apart_merge_on_simulated_time() -> None:
    """A shard whose series started a snapshot late and one that ended a snapshot early
    merge into one series whose simulated time only grows: before its first row a shard
    adds nothing, after its last it adds its last running counts."""

    def row(sim: float, sent: int) -> dict[str, Any]:
        return {"wall_s": sim / 10, "sim": sim, "sent": sent, "delivered": sent, "failed": 0}

    early = [row(60.0, 5), row(120.0, 10), row(180.0, 15)]
    late = [row(120.0, 1), row(180.0, 2), row(240.0, 3)]
    merged = merge_rows([early, late])
    assert [r["sim"] for r in merged] == [60.0, 120.0, 180.0, 240.0]
    assert [r["sent"] for r in merged] == [5, 11, 17, 18]


def test_time_series_of_shards_merge_row_by_row() -> None:
    """Counts and rates add up, the error rate is recomputed, latency and loop lag take
    the worse shard; a shard with fewer rows (it ended a snapshot earlier) adds its last
    running counts to the later rows and nothing else, so the last row counts both."""
    a: list[dict[str, Any]] = [
        {
            "wall_s": 1.0,
            "sim": 10.0,
            "sent": 10,
            "delivered": 9,
            "failed": 1,
            "dropped": 0,
            "in_flight": 0,
            "connected": 3,
            "rate_per_s": 9.0,
            "failed_per_s": 1.0,
            "cpu_pct": 20.0,
            "rss_mb": 50.0,
            "p50_ms": 2.0,
            "p95_ms": 5.0,
            "p99_ms": None,
            "loop_lag_ms": {"p50": 0.5, "p99": 2.0, "max": 3.0},
        },
        {"wall_s": 2.0, "sim": 20.0, "sent": 20, "delivered": 20, "failed": 0, "dropped": 0},
    ]
    b: list[dict[str, Any]] = [
        {
            "wall_s": 1.1,
            "sim": 10.0,
            "sent": 30,
            "delivered": 30,
            "failed": 0,
            "dropped": 0,
            "in_flight": 2,
            "connected": 4,
            "rate_per_s": 30.0,
            "failed_per_s": 0.0,
            "cpu_pct": 30.0,
            "rss_mb": 60.0,
            "p50_ms": 1.0,
            "p95_ms": 9.0,
            "p99_ms": 12.0,
            "loop_lag_ms": {"p50": 0.2, "p99": 4.0, "max": 4.5},
        },
    ]
    rows = merge_rows([a, b])
    assert len(rows) == 2
    row = rows[0]
    assert (row["sent"], row["delivered"], row["failed"], row["in_flight"]) == (40, 39, 1, 2)
    assert (row["rate_per_s"], row["connected"], row["rss_mb"]) == (39.0, 7, 110.0)
    assert row["error_rate"] == 0.025
    assert (row["p50_ms"], row["p95_ms"], row["p99_ms"]) == (2.0, 9.0, 12.0)
    assert row["loop_lag_ms"] == {"p50": 0.5, "p99": 4.0, "max": 4.5}
    assert row["wall_s"] == 1.1
    last = rows[1]
    assert (last["sent"], last["delivered"], last["failed"], last["in_flight"]) == (50, 50, 0, 2)
    assert (last["rate_per_s"], last["connected"], last["rss_mb"]) == (0.0, 0, 0.0)
    assert (last["wall_s"], last["sim"], last["p95_ms"]) == (2.0, 20.0, None)


@pytest.mark.slow
def test_an_http_soak_over_two_processes_is_one_run_the_backend_confirms(
    backend: Backends, tmp_path: Path
) -> None:
    """`simulate soak --http --processes 2` against the reference backend: both shards post
    to one backend, the report and the HTML page are one run's (two processes, one time
    series, one loop lag per process), and the backend's own store (read with httpx, not
    barnstorm's books) holds every message the merged report counts as acknowledged."""
    url = backend()
    report, page = tmp_path / "soak.json", tmp_path / "soak.html"
    result = simulate(
        *("soak", "--farms", "4", "--clean", "--quiet", "--processes", "2"),
        *("--speed", "600", "--duration", "20m", "--snapshot-every", "1m"),
        *("--http", f"{url}/ingest", "--readback", f"{url}/api/readback"),
        *("--report", str(report), "--html", str(page)),
        *("--timeseries", str(tmp_path / "soak.jsonl")),
    )
    assert result.returncode == EXIT_OK, result.stderr
    data = json.loads(report.read_text())
    assert data["time"]["processes"] == 2
    assert data["fleet"]["devices_in_run"] == data["fleet"]["devices"]
    totals, accounting = data["totals"], data["accounting"]
    assert totals["sent"] > 0
    assert totals["acknowledged"] == totals["sent"] - totals["dropped"]  # nothing failed
    assert accounting["expected"] == accounting["received"] == totals["acknowledged"]
    assert accounting["lost"] == accounting["unexpected"] == 0
    stored = httpx.get(f"{url}/api/readback", headers=READBACK_HEADERS).json()
    assert stored["received"] == totals["acknowledged"]
    assert len(data["time"]["loop_lag_ms_by_process"]) == 2
    assert data["timeseries"][-1]["sent"] == totals["sent"]
    # A row a simulated minute, merged over the shards: on a busy machine a shard may start
    # its series a few simulated minutes late, so the count is not exact.
    sims = [row["sim"] for row in data["timeseries"]]
    assert len(sims) >= 5
    assert sims == sorted(sims)
    html = page.read_text()
    assert html.count("<svg") >= 6
    assert f"{totals['sent']:,}" in html
