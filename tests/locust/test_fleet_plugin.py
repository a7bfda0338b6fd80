"""The device fleet as a Locust plugin: a Locust suite that knows nothing of barnstorm gains
the fleet by one more ``-f`` entry, configured by ``--barnstorm-*`` options (or
``locust.conf``), alone or over Locust's master and two workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator.fleet.build import DEFAULT_SEED
from simulator.fleet.load import load_fleet
from simulator.units import until_stopped
from tests.conftest import READBACK_HEADERS, Backends
from tests.helpers import ROOT

pytestmark = pytest.mark.slow  # every test here starts Locust and a backend

#: a team's own locustfile: a plain HttpUser with two tasks, no word of barnstorm.
THEIR_LOCUSTFILE = """
from locust import HttpUser, constant, task


class Farmer(HttpUser):
    wait_time = constant(0.5)

    def on_start(self):
        login = {"username": "farmer", "password": "barnstorm"}
        answer = self.client.post("/api/login", json=login)
        self.client.headers["Authorization"] = "Bearer " + answer.json()["token"]

    @task
    def farms(self):
        self.client.get("/api/farms")

    @task
    def alerts(self):
        self.client.get("/api/alerts")
"""


def _environment() -> dict[str, str]:
    """This process's environment without barnstorm's settings (but its client ids): the
    fleet is configured by the command line or locust.conf only."""
    keep = {"BARNSTORM_CLIENT_ID_PREFIX"}
    return {k: v for k, v in os.environ.items() if not k.startswith("BARNSTORM_") or k in keep}


def _locust(*args: str, cwd: Path) -> tuple[int, list[dict[str, Any]], str]:
    process = subprocess.run(
        [sys.executable, "-m", "locust", *args, "--headless", "--json", "--only-summary"],
        cwd=cwd,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    # Under --processes each worker prints its own (empty) summary too: the master's is
    # the one with the requests in it.
    decoder, text, at = json.JSONDecoder(), process.stdout, 0
    stats: list[dict[str, Any]] = []
    while (at := text.find("[", at)) >= 0:
        document, at = decoder.raw_decode(text, at)
        if len(document) > len(stats):
            stats = document
    return process.returncode, stats, process.stderr


def _every_device_once(url: str, farms: int) -> None:
    fleet, _ = load_fleet(farms, DEFAULT_SEED, None, None)
    readback = httpx.get(f"{url}/api/readback", headers=READBACK_HEADERS).json()
    assert set(readback["devices"]) == set(fleet.devices.ids)
    assert readback["duplicates"] == 0


def test_a_suite_of_its_own_gains_the_fleet_by_one_more_locustfile(
    tmp_path: Path, backend: Backends
) -> None:
    """`locust -f their_users.py,locustfiles/fleet.py` with --barnstorm-* options: both the
    suite's requests and the devices' messages are in Locust's statistics, every device
    of the fleet reached the backend, the SLA over both is judged and written as JUnit,
    barnstorm's HTML page of the run is written, and Locust exits 0."""
    url = backend("--farms", "2")
    (tmp_path / "their_users.py").write_text(THEIR_LOCUSTFILE)
    junit, html = tmp_path / "slas.xml", tmp_path / "run.html"
    code, stats, stderr = _locust(
        *("-f", f"their_users.py,{ROOT / 'locustfiles' / 'fleet.py'}"),
        *("--host", url, "-u", "2", "-r", "2", "-t", "10s"),
        *("--barnstorm-farms", "2", "--barnstorm-http", f"{url}/ingest"),
        *("--barnstorm-speed", "180", "--barnstorm-clean"),
        *("--barnstorm-sla", "dashboard.error_rate<1%", "--barnstorm-sla", "ingest.p95<5s"),
        *("--barnstorm-junit", str(junit), "--barnstorm-html", str(html)),
        cwd=tmp_path,
    )
    assert code == 0, stderr[-3000:]
    requests = {entry["name"]: entry for entry in stats}
    assert requests["/api/farms"]["num_requests"] > 0
    assert requests["/api/alerts"]["num_requests"] > 0
    devices = [e for name, e in requests.items() if name.startswith("ingest ")]
    assert sum(e["num_requests"] for e in devices) > 20
    assert sum(e["num_failures"] for e in stats) == 0
    _every_device_once(url, 2)
    assert "SLA held" in stderr
    assert "BROKEN" not in stderr
    assert junit.read_text().count("<testcase") == 2
    assert "Device fleet" in html.read_text() or "ingest" in html.read_text()


def test_two_workers_run_every_farm_once_configured_by_locust_conf(
    tmp_path: Path, backend: Backends
) -> None:
    """The same suite over Locust's master and two workers (--processes 2), the fleet's
    settings in locust.conf: each worker runs half the farms, so the backend hears every
    device once, and both kinds of request are in the master's statistics."""
    farms = 4
    url = backend("--farms", str(farms))
    (tmp_path / "their_users.py").write_text(THEIR_LOCUSTFILE)
    (tmp_path / "locust.conf").write_text(
        f"barnstorm-farms = {farms}\nbarnstorm-http = {url}/ingest\n"
        "barnstorm-speed = 180\nbarnstorm-clean = true\nbarnstorm-connect-rate = 0\n"
    )
    code, stats, stderr = _locust(
        *("-f", f"their_users.py,{ROOT / 'locustfiles' / 'fleet.py'}"),
        *("--config", "locust.conf", "--processes", "2"),
        *("--host", url, "-u", "2", "-r", "2", "-t", "12s"),
        cwd=tmp_path,
    )
    assert code == 0, stderr[-3000:]
    names = {entry["name"] for entry in stats}
    assert {"/api/farms", "/api/alerts"} <= names
    assert any(name.startswith("ingest ") for name in names)
    _every_device_once(url, farms)


def test_a_bad_sla_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """An SLA the grammar does not know stops Locust before the test, in one line naming
    --barnstorm-sla."""
    (tmp_path / "their_users.py").write_text(THEIR_LOCUSTFILE)
    code, _, stderr = _locust(
        *("-f", f"their_users.py,{ROOT / 'locustfiles' / 'fleet.py'}"),
        *("--host", "http://127.0.0.1:9", "-u", "1", "-t", "5s"),
        *("--barnstorm-sla", "ingest.p95<soon"),
        cwd=tmp_path,
    )
    assert code == 2
    assert "--barnstorm-sla" in stderr.strip().splitlines()[-1]


def test_the_step_load_shape_runs_over_a_suite_of_its_own(
    tmp_path: Path, backend: Backends
) -> None:
    """`-f their_users.py,locustfiles/fleet_capacity.py`: barnstorm's step-load shape drives
    the suite's own users and one more fleet shard a step, and judges each step on the
    suite's requests and the devices' messages."""
    url = backend("--farms", "2")
    (tmp_path / "their_users.py").write_text(THEIR_LOCUSTFILE)
    plan = {
        "steps": 2,
        "step_seconds": 6,
        "warmup_seconds": 1,
        "users": 1,
        "users_step": 1,
        "spawn_rate": 5,
        "farms": 0,
        "constant_fleet": False,
        "farms_per_step": 1,
        "fleet_shards": 2,
        "slas": ["dashboard.error_rate<50%"],
    }
    out = tmp_path / "steps.json"
    env = {
        **_environment(),
        "BARNSTORM_CAPACITY": json.dumps(plan),
        "BARNSTORM_CAPACITY_OUT": str(out),
    }
    process = subprocess.run(
        [
            *(sys.executable, "-m", "locust", "--headless", "--only-summary", "-t", "60s"),
            *("-f", f"their_users.py,{ROOT / 'locustfiles' / 'fleet_capacity.py'}"),
            *("--host", url, "--barnstorm-farms", "2", "--barnstorm-speed", "60"),
            *("--barnstorm-http", f"{url}/ingest"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    steps = json.loads(out.read_text())["steps"]
    assert [(step["users"], step["farms"], step["held"]) for step in steps] == [
        (1, 1, True),
        (2, 2, True),
    ]
    assert {"/api/farms", "/api/alerts"} <= set(steps[1]["scopes"])
    assert any(name.startswith("ingest ") for name in steps[1]["scopes"])


def test_a_mixed_run_in_real_time_runs_its_fleet_and_a_failing_fleet_says_why(
    backend: Backends,
) -> None:
    """At the default speed (1: real time) the fleet of a mixed run runs until the test
    stops it and its devices' requests are in Locust's statistics (its duration "until the
    test stops" once exceeded what simulate run takes in real time, and the fleet died
    unseen); a fleet that cannot start is told with its own one-line error, not only as
    "sent nothing"."""
    url = backend("--farms", "5")
    base = [sys.executable, "-m", "simulator", "mixed", "--farms", "5", "--users", "0"]
    base += ["--run-time", "20s", "--host", url, "--http", f"{url}/ingest"]
    done = subprocess.run(
        [*base, "--json", "--only-summary"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "BARNSTORM_CONNECT_RATE": "0"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "device fleet" not in done.stderr
    stats = json.loads(done.stdout)
    assert sum(s["num_requests"] for s in stats if s["name"].startswith("ingest ")) > 0
    broken = subprocess.run(
        base,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "BARNSTORM_TOPIC_TEMPLATE": "{nope}"},
    )
    assert broken.returncode != 0
    assert "the device fleet (1 of 1) failed (exit 2): simulate: error:" in broken.stderr
    assert "{nope}" in broken.stderr


def test_the_fleet_runs_until_the_test_stops_within_a_year_of_real_time() -> None:
    """The fleet's duration when the test gives none: longer than any test, and never
    past the year of real time simulate run accepts, at any speed."""
    assert until_stopped("1") == "360d"
    assert until_stopped(None) == "360d"
    assert until_stopped("120") == "3650d"
    assert until_stopped("max") == "3650d"
    assert until_stopped("0.001") == "1d"
