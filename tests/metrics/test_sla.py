"""SLA verdicts: parsing, judging, exit codes and JUnit XML, standalone and mixed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from simulator.errors import ConfigError
from simulator.exitcodes import EXIT_SLA
from simulator.metrics.sla import Measure, evaluate, parse_sla
from tests.conftest import Backends
from tests.helpers import ROOT, simulate


def _measure(latencies_ms: list[float], failures: int = 0, seconds: float = 10.0) -> Measure:
    ordered = sorted(latencies_ms)
    return Measure(
        count=len(ordered) + failures,
        failures=failures,
        seconds=seconds,
        lost=failures,
        quantile=lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))],
        max_ms=ordered[-1],
        mean_ms=sum(ordered) / len(ordered),
    )


def test_slas_parse_into_scope_metric_and_threshold() -> None:
    """Each kind of SLA parses into scope, metric, operator and a threshold in the metric's
    unit (ms, a fraction, per second, a count); no scope means ingest."""
    cases = {
        "ingest.p95<250ms": ("ingest", "p95", "<", 250.0),
        "cough_monitor.p99<=1.5s": ("cough_monitor", "p99", "<=", 1500.0),
        "dashboard.error_rate<1%": ("dashboard", "error_rate", "<", 0.01),
        "dashboard.error_rate<0.02": ("dashboard", "error_rate", "<", 0.02),
        "loss==0": ("ingest", "loss", "==", 0.0),
        "ingest.rate>=2000/s": ("ingest", "rate", ">=", 2000.0),
        '"GET /api/farms/[farm_id]".p99.9 < 800ms': ("GET /api/farms/[farm_id]", "p99.9", "<", 800),
    }
    for text, (scope, metric, op, threshold) in cases.items():
        sla = parse_sla(text)
        assert (sla.scope, sla.metric, sla.op) == (scope, metric, op), text
        assert sla.threshold == pytest.approx(threshold), text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ingest.p95", "is not an SLA"),
        ("ingest.p95<fast", "expected a latency"),
        ("ingest.error_rate<5", "expected a share"),
        ("ingest.rate>lots", "expected a rate"),
        ("ingest.p100<1s", "percentile is between"),
        ("loss<none", "expected a count"),
    ],
)
def test_bad_slas_are_refused_with_what_was_expected(text: str, message: str) -> None:
    """A malformed SLA is a ConfigError naming the flag and what was expected."""
    with pytest.raises(ConfigError, match=message) as error:
        parse_sla(text)
    assert str(error.value).startswith("--sla")


def test_verdicts_compare_the_measured_value() -> None:
    """Verdicts hold or break on the measured value; a scope without data breaks."""
    measures = {"ingest": _measure([10.0] * 90 + [400.0] * 10, failures=1)}
    verdicts = evaluate(
        [
            parse_sla("ingest.p50<50ms"),
            parse_sla("ingest.p95<250ms"),
            parse_sla("ingest.error_rate<2%"),
            parse_sla("ingest.rate>=9/s"),
            parse_sla("dashboard.p95<1s"),
        ],
        measures,
    )
    assert [v.held for v in verdicts] == [True, False, True, True, False]
    assert verdicts[1].actual == 400.0
    assert "ingest p95 400 ms, limit < 250 ms" in verdicts[1].detail
    assert verdicts[4].actual is None
    assert "no dashboard data" in verdicts[4].detail


@pytest.mark.slow
def test_a_run_exits_0_when_its_slas_hold_and_3_when_one_breaks(
    tmp_path: Path, backend: Backends
) -> None:
    """Against the reference backend over HTTP, with read-back: SLAs that hold exit 0 and
    the JUnit file has no failure; an SLA that breaks exits 3, the report keeps every
    verdict, and the JUnit file names the broken SLA and its measured value."""
    url = backend("--farms", "2")
    # 10 s of real time: a busy machine still connects every device well before the end.
    common = ["--farms", "2", "--http", f"{url}/ingest", "--speed", "60", "--duration", "10m"]
    common += ["--readback", f"{url}/api/readback", "--quiet"]
    holding = tmp_path / "holding.xml"
    result = simulate(
        *common,
        *("--sla", "ingest.p95<10s", "--sla", "loss==0", "--sla", "ingest.error_rate<1%"),
        *("--junit", str(holding)),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    suite = ElementTree.parse(holding).getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("3", "0")

    breaking = tmp_path / "breaking.xml"
    report = tmp_path / "report.json"
    result = simulate(
        *common,
        *("--sla", "loss==0", "--sla", "ingest.rate>=1000000/s"),
        *("--junit", str(breaking), "--report", str(report)),
    )
    assert result.returncode == EXIT_SLA, result.stdout + result.stderr
    assert "SLA BROKEN ingest.rate>=1000000/s" in result.stdout
    verdicts = result.report(report)["sla"]
    assert [v["held"] for v in verdicts] == [True, False]
    assert verdicts[1]["actual"] > 0
    cases = ElementTree.parse(breaking).getroot().findall("testcase")
    failed = [case for case in cases if case.find("failure") is not None]
    assert [case.get("name") for case in failed] == ["ingest.rate>=1000000/s"]
    failure = failed[0].find("failure")
    assert failure is not None
    message = failure.get("message", "")
    assert re.search(r"BROKEN, ingest rate [\d,.]+/s, limit >= 1,000,000\.0/s$", message), message


@pytest.mark.slow
def test_sla_table_in_a_config_file(tmp_path: Path) -> None:
    """An [sla] table in --config sets the SLAs; a bad one names the file and key."""
    config = tmp_path / "run.toml"
    config.write_text('[sla]\n"ingest.p95" = "<5s"\n"loss" = "==0"\n')
    report = tmp_path / "report.json"
    result = simulate(
        *("--config", str(config), "--farms", "1", "--output", str(tmp_path / "m.jsonl")),
        *("--speed", "max", "--duration", "1h", "--processes", "1", "--quiet"),
        *("--report", str(report)),
    )
    assert result.returncode == 0, result.stderr
    assert [v["sla"] for v in result.report(report)["sla"]] == ["ingest.p95<5s", "loss==0"]
    config.write_text('[sla]\n"ingest.p95" = "<soon"\n')
    result = simulate("--config", str(config), "--farms", "1", "--quiet")
    assert result.returncode == 2
    assert f"{config}: sla" in result.stderr
    assert "expected a latency" in result.stderr


@pytest.mark.slow
def test_mixed_run_judges_slas_over_devices_and_dashboards(
    tmp_path: Path, backend: Backends, mosquitto: str, topic_root: str
) -> None:
    """`simulate mixed --sla` judges both kinds of load in Locust's statistics: a dashboard
    SLA and a device SLA that hold, one that cannot hold; Locust exits 3, the JUnit file
    says which broke, and the mixed run's HTML report has the verdicts, plots of both kinds
    of load over time, a row per request name and the backend's own account of its time
    (Server-Timing, read from every dashboard response); --report writes the same as
    JSON."""
    url = backend("--farms", "2", "--mqtt", mosquitto, "--topic", f"{topic_root}/#")
    junit = tmp_path / "mixed.xml"
    html = tmp_path / "mixed.html"
    report = tmp_path / "mixed.json"
    env = {
        **os.environ,
        "BARNSTORM_CONNECT_RATE": "0",
        "BARNSTORM_TOPIC_TEMPLATE": f"{topic_root}/{{device_id}}/{{kind}}",
    }
    slas = ["dashboard.error_rate<50%", "cough_monitor.p95<10s", "ingest.rate>=1000000/s"]
    load = ["--farms", "2", "--users", "2", "--spawn-rate", "2", "--run-time", "8s"]
    result = subprocess.run(
        [sys.executable, "-m", "simulator", "mixed", *load, "--host", url, "--mqtt", mosquitto]
        + ["--speed", "120", "--junit", str(junit), "--html", str(html), "--report", str(report)]
        + [arg for sla in slas for arg in ("--sla", sla)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == EXIT_SLA, result.stderr[-3000:]
    cases = {case.get("name"): case for case in ElementTree.parse(junit).getroot()}
    assert set(cases) == set(slas)
    assert [name for name, case in cases.items() if case.find("failure") is not None] == [
        "ingest.rate>=1000000/s"
    ]
    page = html.read_text()
    assert "1 of 3 SLAs broken" in page
    assert page.count("<svg") == 6
    assert "Backend time per request (Server-Timing" in page
    assert "publish cough_monitor" in page
    assert "POST /api/login" in page  # every user logs in first: a dashboard row for sure
    data = json.loads(report.read_text())
    requests = {r["name"]: r for r in data["requests"]}
    login = requests["POST /api/login"]["backend"]
    assert login["responses"] == requests["POST /api/login"]["requests"] == 2
    assert login["queries_per_request"] == 0  # a login reads no table
    assert set(login["ms"]) == {"db", "app", "total"}
    assert requests["publish cough_monitor"]["backend"] is None  # MQTT has no header
    assert data["by_device_type"]["cough_monitor"] == requests["publish cough_monitor"]
    assert [v["held"] for v in data["sla"]] == [True, True, False]
    lag = data["fleet_loop_lag_ms"]  # the fleet process's own event-loop lag
    assert len(lag) == 1
    assert lag[0]["max"] >= lag[0]["p99"] > 0
    assert "own event-loop lag (fleet processes)" in page
