"""`simulate` with no target: the embedded broker, delivery accounting, the report."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import simulate

pytestmark = pytest.mark.slow  # every test here starts a process or a broker


def _path_without_mosquitto() -> str:
    """PATH as on a fresh machine: no mosquitto anywhere on it."""
    keep = [
        d
        for d in os.environ.get("PATH", "").split(os.pathsep)
        if d and not (Path(d) / "mosquitto").exists()
    ]
    path = os.pathsep.join(keep)
    assert shutil.which("mosquitto", path=path) is None
    return path


def test_embedded_default_runs_twenty_farms_and_accounts_for_every_message(tmp_path: Path) -> None:
    """`simulate --farms 20` with no broker given starts one, publishes at QoS 1 and proves,
    with the reference backend's store (fed by paho, through aiomqtt), that every accepted
    message was delivered."""
    report_file = tmp_path / "report.json"
    result = simulate(
        "--farms",
        "20",
        "--duration",
        "10m",
        "--speed",
        "60",
        "--report",
        str(report_file),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    report = result.report(report_file)
    assert report["outcome"] == "completed"
    assert report["target"]["kind"] == "mqtt"
    assert report["target"]["embedded_broker"] in ("mosquitto", "amqtt")
    assert report["target"]["qos"] == 1
    assert report["fleet"]["farms"] == 20
    totals = report["totals"]
    assert totals["sent"] > 0
    assert totals["acknowledged"] == totals["sent"]
    accounting = report["accounting"]
    assert accounting["expected"] == totals["acknowledged"]
    assert accounting["received"] == accounting["expected"]
    assert accounting["lost"] == 0
    assert set(report["by_device_type"]) == {"cough_monitor", "climate_node", "gateway"}
    for counts in report["by_device_type"].values():
        assert set(counts["latency_ms"]) == {"p50", "p95", "p99", "max", "mean"}
    assert "delivery: all" in result.stdout


def test_five_hundred_farms_work_without_mosquitto_on_the_machine(tmp_path: Path) -> None:
    """On a machine without mosquitto the embedded default falls back to amqtt and still runs
    `simulate --farms 500` end to end with nothing lost."""
    report_file = tmp_path / "report.json"
    result = simulate(
        "--farms",
        "500",
        "--duration",
        "5m",
        "--speed",
        "30",
        "--report",
        str(report_file),
        "--quiet",
        env={"PATH": _path_without_mosquitto()},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = result.report(report_file)
    assert report["target"]["embedded_broker"] == "amqtt"
    assert report["fleet"]["farms"] == 500
    assert report["fleet"]["devices"] > 10_000
    totals = report["totals"]
    assert totals["sent"] > 5_000
    assert totals["acknowledged"] == totals["sent"]
    assert report["accounting"]["lost"] == 0
    assert report["connections"]["failed"] == 0
