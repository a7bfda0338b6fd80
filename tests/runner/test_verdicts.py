"""Exit codes a CI job can rely on: a run that got nothing through fails and says why, a
read-back that cannot be read fails, too many failures exit 5, and a read-back covers the
run that asks, not earlier runs against the same backend."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from simulator.backend.broker import free_port
from simulator.exitcodes import EXIT_FAILED, EXIT_OK, EXIT_SLA, EXIT_USAGE
from tests.conftest import READBACK_HEADERS, Backends
from tests.helpers import ROOT, simulate

pytestmark = pytest.mark.slow  # every test here starts a process

FEW = ("--farms", "2", "--clean", "--quiet")
TEN_MINUTES_FAST = ("--speed", "120", "--duration", "10m")


def test_a_dead_url_exits_1_and_says_what_to_check(tmp_path: Path) -> None:
    """Nothing listens at the ingest URL: every message fails as "connect", the run exits 1
    with one line saying none was accepted and what to check, and the report is written."""
    url = f"http://127.0.0.1:{free_port()}/ingest"
    report = tmp_path / "report.json"
    result = simulate(*FEW, *TEN_MINUTES_FAST, "--http", url, "--report", str(report))
    assert result.returncode == EXIT_FAILED, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("simulate: error: none of the")
    assert "connect" in line
    assert "is the target up" in line
    data = json.loads(report.read_text())
    assert data["outcome"] == "failed"
    assert data["totals"]["sent"] > 0 == data["totals"]["acknowledged"]


def test_a_wrong_path_exits_1_and_names_the_ingest_path(backend: Backends) -> None:
    """Every request answered 404 (the path has a typo): exit 1, and the line points at the
    path the reference backend ingests at."""
    url = backend()
    result = simulate(*FEW, *TEN_MINUTES_FAST, "--http", f"{url}/ingst")
    assert result.returncode == EXIT_FAILED, result.stderr
    assert "http_404" in result.stderr, result.stderr
    assert "/ingest" in result.stderr


def test_a_run_that_ends_before_its_ramp_exits_1_saying_why(mosquitto: str) -> None:
    """Half a second of real time (30 s at --speed 60) for a ramp of a hundred connections
    at 10 a second: nothing is sent, and the run says the ramp did not finish."""
    result = simulate(
        *("--farms", "50", "--quiet", "--speed", "60", "--duration", "30s"),
        *("--device-types", "cough_monitor", "--connect-rate", "10"),
        *("--mqtt", mosquitto, "--topic-template", f"verdicts/{os.getpid()}/{{device_id}}"),
    )
    assert result.returncode == EXIT_FAILED, result.stderr
    assert "nothing was sent: the run ended before its devices were connected" in result.stderr
    assert "--connect-rate" in result.stderr


def test_a_run_where_nothing_falls_due_exits_1_saying_why(tmp_path: Path) -> None:
    """Cough monitors send every 15 minutes: a 30-second run of them sends nothing, and the
    run says so instead of reporting success."""
    result = simulate(
        *FEW,
        *("--device-types", "cough_monitor", "--speed", "max", "--duration", "30s"),
        *("--output", str(tmp_path / "out.jsonl")),
    )
    assert result.returncode == EXIT_FAILED, result.stderr
    assert "nothing fell due" in result.stderr, result.stderr
    assert "15m" in result.stderr


def test_an_unreachable_readback_fails_the_run_before_it_sends(tmp_path: Path) -> None:
    """A read-back URL nobody answers: the run cannot say anything about delivery, so it
    fails at once (exit 1, naming the URL) rather than reporting success."""
    readback = f"http://127.0.0.1:{free_port()}/api/readback"
    output = tmp_path / "out.jsonl"
    result = simulate(*FEW, *TEN_MINUTES_FAST, "--output", str(output), "--readback", readback)
    assert result.returncode == EXIT_FAILED, result.stderr
    assert f"read-back from {readback} failed" in result.stderr


def test_a_second_run_reconciles_against_its_own_messages(
    backend: Backends, tmp_path: Path
) -> None:
    """Two runs of one fleet against one backend (the same devices, the same seqs): each
    reconciles against what arrived during it, so the second reports no duplicates and no
    loss though the backend holds most messages twice, as its own read-back shows; each
    report holds the backend's Server-Timing per device type."""
    url = backend()
    accounts = []
    for run in range(2):
        report = tmp_path / f"run{run}.json"
        result = simulate(
            *FEW,
            *TEN_MINUTES_FAST,
            *("--http", f"{url}/ingest", "--readback", f"{url}/api/readback"),
            *("--report", str(report)),
        )
        assert result.returncode == EXIT_OK, result.stderr
        accounts.append(json.loads(report.read_text())["accounting"])
    for accounting in accounts:
        assert accounting["expected"] > 0
        assert accounting["received"] == accounting["expected"]
        assert accounting["lost"] == accounting["duplicated"] == 0
    # The backend's Server-Timing came back with every ingest request, by device type.
    last = json.loads(report.read_text())
    for name, counts in last["by_device_type"].items():
        assert counts["backend"]["queries_per_request"] == 1.0, name  # one insert a batch
        assert counts["backend"]["responses"] > 0
        assert set(counts["backend"]["ms"]) == {"db", "store", "app", "total"}
    assert last["n_plus_one"] == []
    # barnstorm's own event-loop lag, over the run and per time-series row.
    assert set(last["time"]["loop_lag_ms"]) == {"p50", "p95", "p99", "max", "mean"}
    assert all(set(row["loop_lag_ms"]) == {"p50", "p99", "max"} for row in last["timeseries"])
    assert "barnstorm's event-loop lag: p50" in result.stdout
    # The store holds both runs: the second run's (device, seq) pairs repeat the first's.
    whole = httpx.get(f"{url}/api/readback", headers=READBACK_HEADERS).json()
    stored = whole["received"] + whole["duplicates"]
    assert stored == accounts[0]["expected"] + accounts[1]["expected"]
    assert whole["duplicates"] > 0


def test_a_mixed_run_of_the_default_fleet_against_a_healthy_backend_exits_0(
    backend: Backends, mosquitto: str, tmp_path: Path
) -> None:
    """The default fleet (imperfections on) with dashboard users against a healthy reference
    backend, half its sites in a network outage when the test stops: Locust exits 0; what
    the offline devices still hold is said apart, as never sent, and is no request
    failure (it never reached the target)."""
    outage = tmp_path / "outage.toml"
    outage.write_text(
        '[[events]]\ntype = "network_outage"\nat = "5m"\nduration = "10d"\n'
        'where = { share = 0.5, unit = "site" }\n'
    )
    topic = f"verdicts-mixed/{os.getpid()}"
    # The backend knows the run's 20 farms: a room whose devices have not published yet
    # (offline from the start, in the outage) is an empty chart, not a 404.
    url = backend("--farms", "20", "--mqtt", mosquitto, "--topic", f"{topic}/#")
    env = {
        **os.environ,
        "BARNSTORM_TOPIC_TEMPLATE": f"{topic}/{{device_id}}/{{kind}}",
        "BARNSTORM_DASHBOARD_MAP": str(ROOT / "locustfiles" / "dashboard_map.toml"),
        "BARNSTORM_SCENARIO": str(outage),
    }
    result = subprocess.run(
        [
            *(sys.executable, "-m", "simulator", "mixed", "--farms", "20", "--users", "2"),
            *("--spawn-rate", "2", "--run-time", "10s", "--speed", "120", "--host", url),
            *("--mqtt", mosquitto, "--json", "--only-summary"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == EXIT_OK, result.stderr[-3000:]
    stats = json.loads(result.stdout)
    devices = [row for row in stats if row["method"] == "MQTT"]
    assert sum(row["num_requests"] for row in devices) > 0
    assert sum(row["num_failures"] for row in devices) == 0
    assert "device messages were never sent" in result.stderr


def test_a_run_against_its_baseline_exits_3_when_a_rule_breaks(tmp_path: Path) -> None:
    """--baseline judges the run against an earlier report: a rule it cannot meet (ten
    times the baseline's rate) breaks, exit 3, and the report says so; one it meets holds,
    exit 0; a baseline that is no report is bad input, before anything runs."""
    history = ("--farms", "2", "--duration", "1h", "--speed", "max", "--quiet")
    first = tmp_path / "first.json"
    result = simulate(*history, "--output", str(tmp_path / "a.jsonl"), "--report", str(first))
    assert result.returncode == EXIT_OK, result.stderr
    second = tmp_path / "second.json"
    result = simulate(
        *history,
        *("--output", str(tmp_path / "b.jsonl"), "--report", str(second)),
        *("--baseline", str(first), "--rule", "rate>=baseline*10"),
    )
    assert result.returncode == EXIT_SLA, result.stderr
    assert "REGRESSION: 3 rule(s) broken" in result.stderr
    broken = re.findall(r"\d+\. (\w+)\n\s+rate .* limit ", result.stderr)
    assert sorted(broken) == ["climate_node", "cough_monitor", "gateway"], result.stderr
    data = json.loads(second.read_text())
    assert data["baseline"]["regressed"] is True
    assert data["exit_code"] == EXIT_SLA
    held = simulate(
        *history,
        *("--output", str(tmp_path / "c.jsonl"), "--baseline", str(first)),
        *("--rule", "rate>=baseline*0"),
    )
    assert held.returncode == EXIT_OK, held.stderr
    (tmp_path / "bad.json").write_text("not json")
    bad = simulate(
        *history, "--output", str(tmp_path / "d.jsonl"), "--baseline", str(tmp_path / "bad.json")
    )
    assert bad.returncode == EXIT_USAGE
    assert "--baseline:" in bad.stderr
    assert not (tmp_path / "d.jsonl").exists()
