"""The real ``simulate`` command against the real Mosquitto, watched by an independent client."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.conftest import Observer
from tests.helpers import ROOT, simulate

pytestmark = pytest.mark.slow  # every test here starts a process or a broker


@pytest.mark.parametrize(
    ("qos", "version", "connection"),
    [(1, "3.1.1", "per-device"), (2, "5", "per-device"), (1, "3.1.1", "per-gateway")],
)
def test_every_acknowledged_message_reaches_an_independent_subscriber(
    tmp_path: Path,
    mosquitto: str,
    observer: Observer,
    topic_root: str,
    qos: int,
    version: str,
    connection: str,
) -> None:
    """Every message the report counts as acknowledged arrives at a paho subscriber, and each
    device's seq runs 0, 1, 2, ... without gaps or repeats."""
    report_file = tmp_path / "report.json"
    result = simulate(
        "--farms",
        "6",
        "--duration",
        "20m",
        "--speed",
        "300",
        "--mqtt",
        mosquitto,
        "--qos",
        str(qos),
        "--mqtt-version",
        version,
        "--connection",
        connection,
        "--topic-template",
        f"{topic_root}/{{farm_id}}/{{device_type}}/{{device_id}}/{{kind}}",
        "--connect-rate",
        "0",
        "--report",
        str(report_file),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    report = result.report(report_file)
    totals = report["totals"]
    assert totals["sent"] > 300
    assert totals["acknowledged"] == totals["sent"]
    assert totals["failed"] == totals["dropped"] == totals["in_flight"] == 0
    assert report["target"]["connection"] == connection

    # Devices resend about 0.5 % of messages with the same seq (a fleet imperfection).
    observer.check_delivery(totals)
    by_type = report["by_device_type"]
    for device_type, counts in by_type.items():
        seen = {
            (p["device_id"], p["seq"])
            for _, p in observer.messages
            if p["device_type"] == device_type
        }
        assert len(seen) == counts["acknowledged"], device_type
    # the latency a publisher reports is measured, not zero
    assert 0 < totals["latency_ms"]["p50"] <= totals["latency_ms"]["max"]


def test_qos0_counts_messages_as_unconfirmed_not_acknowledged(
    tmp_path: Path, mosquitto: str, observer: Observer, topic_root: str
) -> None:
    """At QoS 0 the protocol has no receipt: messages are counted as unconfirmed, and a local
    subscriber still sees them all, plus exactly the duplicates the report says went out
    on top of them (the fleet's imperfections are on)."""
    report_file = tmp_path / "report.json"
    result = simulate(
        "--farms",
        "10",
        "--duration",
        "60m",
        "--speed",
        "600",
        "--mqtt",
        mosquitto,
        "--qos",
        "0",
        "--topic-template",
        f"{topic_root}/{{device_id}}/{{kind}}",
        "--report",
        str(report_file),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    totals = result.report(report_file)["totals"]
    assert totals["acknowledged"] == 0
    assert totals["unconfirmed"] == totals["sent"] > 0
    assert totals["duplicates_out"] == totals["duplicates"] > 0
    observer.check_delivery(totals, confirmed="unconfirmed")


def test_ctrl_c_stops_the_run_and_still_writes_a_balanced_report(
    tmp_path: Path, mosquitto: str, observer: Observer, topic_root: str
) -> None:
    """SIGINT in the middle of a long run (once an independent subscriber sees its traffic)
    stops it within seconds with exit 130; the JSON report, the HTML page, the CSV files and
    the JUnit XML are written; the books balance; and the subscriber got every acknowledged
    message, and nothing the report does not count as sent."""
    files = {
        "report": tmp_path / "report.json",
        "html": tmp_path / "report.html",
        "junit": tmp_path / "junit.xml",
    }
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "simulator", "--farms", "10", "--clean", "--quiet"),
            *("--duration", "8h", "--speed", "600", "--mqtt", mosquitto),
            *("--topic-template", f"{topic_root}/{{device_id}}/{{kind}}"),
            *("--report", str(files["report"]), "--html", str(files["html"])),
            *("--junit", str(files["junit"]), "--sla", "ingest.p99<60s"),
            *("--csv", str(tmp_path / "run")),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    observer.wait_for(200, timeout=60)
    assert observer.count() >= 200, process.poll()
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGINT)
    stopped = time.monotonic()
    stdout, stderr = process.communicate(timeout=30)
    assert time.monotonic() - stopped < 10
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    report = json.loads(files["report"].read_text())
    assert report["outcome"] == "interrupted"
    totals = report["totals"]
    assert totals["sent"] > 100
    assert totals["unaccounted"] == 0
    assert totals["sent"] == (
        totals["acknowledged"]
        + totals["unconfirmed"]
        + totals["failed"]
        + totals["dropped"]
        + totals["in_flight"]
    )
    observer.wait_for(totals["acknowledged"])
    with observer.lock:
        pairs = [(p["device_id"], p["seq"]) for _, p in observer.messages]
    assert len(pairs) == len(set(pairs))  # --clean: no repeats
    # Everything acknowledged arrived; what else arrived was sent and is counted as failed
    # or in flight (the broker had it, its acknowledgement had not come back).
    assert totals["acknowledged"] <= len(pairs)
    assert len(pairs) <= totals["acknowledged"] + totals["failed"] + totals["in_flight"]
    assert "interrupted" in stdout
    assert "interrupted" in files["html"].read_text()
    ElementTree.parse(files["junit"])  # well-formed
    assert (tmp_path / "run_by_type.csv").read_text().startswith("device_type,")
    assert (tmp_path / "run_timeseries.csv").exists()
