"""Soak runs: the time series, trends and drift, the HTML report (rendered in headless
Chromium) and the Prometheus endpoint."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from simulator.backend.broker import free_port
from simulator.metrics.timeseries import trends
from simulator.report.svg import PALETTE
from tests.helpers import ROOT, simulate


def _colour_pixels(image: Image.Image, colour: str, tolerance: int = 40) -> int:
    """Pixels of the screenshot within ``tolerance`` of ``colour`` (#rrggbb)."""
    target = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    count = 0
    for n, rgb in image.convert("RGB").getcolors(1 << 24) or []:
        assert isinstance(rgb, tuple)
        if sum(abs(int(a) - b) for a, b in zip(rgb, target, strict=True)) <= tolerance:
            count += n
    return count


@pytest.mark.slow
def test_soak_writes_the_time_series_and_a_report_with_drawn_charts(
    tmp_path: Path, mosquitto: str, topic_root: str
) -> None:
    """A compressed soak (2 simulated hours at 960x over real Mosquitto) writes a row per
    simulated minute as it goes, puts trends in the report, and writes an HTML report whose
    six charts headless Chromium draws with their lines, not empty frames; the CSV files
    hold the same rows."""
    result = simulate(
        *("soak", "--farms", "3", "--duration", "2h", "--speed", "960", "--mqtt", mosquitto),
        *("--topic-template", f"{topic_root}/{{device_id}}/{{kind}}", "--quiet"),
        *("--csv", "soak"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [
        json.loads(line) for line in (tmp_path / "soak-timeseries.jsonl").read_text().splitlines()
    ]
    assert 100 <= len(rows) <= 130  # one per simulated minute, and the last one at the end
    assert [r["sent"] for r in rows] == sorted(r["sent"] for r in rows)
    assert all(r["rss_mb"] > 10 for r in rows)
    assert rows[-1]["delivered"] == rows[-1]["sent"]
    steady = rows[5:-1]
    assert all(r["rate_per_s"] > 0 and r["p95_ms"] is not None for r in steady)
    report = json.loads((tmp_path / "soak-report.json").read_text())
    assert max(r["connected"] for r in rows) == report["connections"]["up"] > 0
    series_csv = (tmp_path / "soak_timeseries.csv").read_text().splitlines()
    assert len(series_csv) == len(rows) + 1
    by_type_csv = (tmp_path / "soak_by_type.csv").read_text().splitlines()
    assert by_type_csv[-1].startswith(f"total,{report['totals']['sent']},")
    assert len(report["timeseries"]) == len(rows)
    assert {t["metric"] for t in report["trends"]} >= {"p95_ms", "rate_per_s", "rss_mb"}

    html = tmp_path / "soak-report.html"
    text = html.read_text()
    assert "http://" not in text.replace(mosquitto, "").replace("http://www.w3.org/2000/svg", "")
    assert text.count("<svg") == 6
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "scripts/setup installs chromium"
    screenshot = tmp_path / "report.png"
    headless = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    subprocess.run(
        [
            chromium,
            *headless,
            "--window-size=1100,2400",
            f"--screenshot={screenshot}",
            html.as_uri(),
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )
    image = Image.open(screenshot)
    assert image.size == (1100, 2400)
    # The first line of each of the six charts is drawn in the palette's first colour,
    # across the plot (about 700 px each): far more than six legend swatches (36 px each).
    assert _colour_pixels(image, PALETTE[0]) > 6 * 500


def _rising(count: int, seconds_apart: float) -> list[dict[str, Any]]:
    """Rows of a run whose p95 rises by half and memory by a fifth; the rest steady."""
    return [
        {
            "wall_s": i * seconds_apart,
            "p95_ms": 20.0 + i * 0.5,
            "p99_ms": 30.0,
            "error_rate": 0.0,
            "rate_per_s": 100.0,
            "rss_mb": 100.0 + i * 0.7,
            "cpu_pct": 30.0,
        }
        for i in range(count)
    ]


def test_trends_flag_a_rising_p95_and_growing_memory() -> None:
    """Drift is flagged when the end of a run is worse than its start: p95 up by half, memory
    up by a fifth; a steady throughput is not flagged."""
    flagged = {t["metric"]: t["drift"] for t in trends(_rising(60, 60.0))}
    assert flagged["p95_ms"] is True
    assert flagged["rss_mb"] is True
    assert flagged["rate_per_s"] is False
    assert flagged["p99_ms"] is False


def test_a_run_of_seconds_shows_its_trends_but_flags_no_drift() -> None:
    """The same rise over 30 seconds of wall time is shown (start, end, change) but not
    called drift: a third of a short run is a handful of noisy samples."""
    short = trends(_rising(60, 0.5))
    assert {t["metric"]: t["drift"] for t in short} == dict.fromkeys(
        ("p95_ms", "p99_ms", "error_rate", "rate_per_s", "rss_mb", "cpu_pct"), False
    )
    assert next(t for t in short if t["metric"] == "p95_ms")["change_pct"] > 50


def _scrape(url: str) -> dict[str, float]:
    values = {}
    for line in httpx.get(url, timeout=2).text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def _sent(values: dict[str, float]) -> float:
    return sum(
        v
        for k, v in values.items()
        if k.startswith("barnstorm_messages_total") and 'outcome="sent"' in k
    )


@pytest.mark.slow
def test_prometheus_serves_the_run_on_loopback_only(tmp_path: Path) -> None:
    """`--prometheus :PORT` serves /metrics on 127.0.0.1 while the run lasts: counters per
    device type and outcome that grow, the connected gauge, latency quantiles; another
    address of the machine gets no answer."""
    port = free_port()
    run = ["--farms", "2", "--output", str(tmp_path / "m.jsonl"), "--speed", "120"]
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", *run, "--duration", "20m", "--prometheus", f":{port}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 20
        first: dict[str, float] = {}
        while _sent(first) == 0:
            assert time.monotonic() < deadline, "nothing served /metrics, or nothing sent"
            time.sleep(0.2)
            with contextlib.suppress(httpx.TransportError):
                first = _scrape(url)
        time.sleep(2)
        second = _scrape(url)
        assert _sent(second) > _sent(first)
        assert second['barnstorm_messages_total{device_type="gateway",outcome="failed"}'] == 0
        assert 'barnstorm_latency_seconds{device_type="gateway",quantile="0.95"}' in second
        assert second["barnstorm_process_resident_memory_bytes"] > 10 * 2**20
        with socket.socket() as probe:
            probe.settimeout(1)
            assert probe.connect_ex(("127.0.0.2", port)) != 0  # bound to 127.0.0.1 only
        assert httpx.get(f"http://127.0.0.1:{port}/other").status_code == 404
    finally:
        process.terminate()
        process.wait(timeout=20)
