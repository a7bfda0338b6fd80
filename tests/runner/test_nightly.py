"""The nightly pipelines in examples/nightly/, run as their CI would run them, against two
reference backends over one database holding a month of a fleet's data: the first night
on the normal backend becomes the baseline; the second, on the backend with the room
chart's N+1, shows the query count in its report and exits 3 against the first."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.exitcodes import EXIT_OK, EXIT_SLA
from tests.conftest import Backends
from tests.helpers import ROOT, seed_history, simulate

pytestmark = pytest.mark.slow  # backends, a month of ingest and two Locust runs

NIGHTLY = ROOT / "examples" / "nightly"
ROOM = "GET /api/farms/[id]/rooms/[id] (7 days)"
#: the dashboards' room chart only, opened often, so both nights have plenty of requests.
ROOM_MAP = f"""
[login]
url = "/api/login"
body = '{{"username": "farmer", "password": "barnstorm"}}'

[views.room_detail]
think = [0.1, 0.3]
[[views.room_detail.requests]]
name = "{ROOM}"
url = "/api/farms/{{farm_id}}/rooms/{{room_id}}?from={{from}}&to={{to}}"
"""


def _scripts(documents: list[str]) -> list[str]:
    """The commands a pipeline runs, but the install (barnstorm is installed here)."""
    return [text for text in documents if not text.startswith("pip install")]


def _night(folder: Path, scripts: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run a pipeline's scripts in order in ``folder`` as CI does (bash, stop at the first
    failure); the last exit code and everything printed."""
    output = ""
    code = 0
    for script in scripts:
        result = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        output += result.stdout + result.stderr
        code = result.returncode
        if code:
            break
    return code, output


def _room(report: Path) -> dict[str, Any]:
    data = json.loads(report.read_text())
    entry: dict[str, Any] = next(r for r in data["requests"] if r["name"] == ROOM)
    return entry


def test_two_nights_of_the_pipelines_catch_the_n_plus_one(
    tmp_path: Path, backend: Backends
) -> None:
    """Night one (the GitLab job, on the normal backend): no earlier report, exit 0, the
    room chart at one query per request. Night two (the GitHub workflow, on the --slow
    backend, with night one's report as the previous artifact): its report shows the room
    chart's thousands of queries per request flagged as an N+1, the comparison breaks the
    queries rule and the job exits 3; the same report compared with itself exits 0."""
    database = tmp_path / "staging.db"
    normal = backend("--farms", "2", database=database)
    slow = backend("--farms", "2", "--slow", database=database)
    seed_history(f"{normal}/ingest", farms=2, days=30, batch=200)
    room_map = tmp_path / "rooms.toml"
    room_map.write_text(ROOM_MAP)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "BARNSTORM_FARMS": "2",
        "BARNSTORM_USERS": "6",
        "BARNSTORM_RUN_TIME": "8s",
        "BARNSTORM_SPEED": "120",
        "BARNSTORM_DASHBOARD_MAP": str(room_map),
        "CI_API_V4_URL": "http://127.0.0.1:1/api/v4",  # no earlier artifact to fetch
    }

    gitlab = yaml.safe_load((NIGHTLY / "gitlab-ci.yml").read_text())["barnstorm-nightly"]
    first = tmp_path / "night-1"
    first.mkdir()
    staging = {"STAGING_URL": normal, "STAGING_INGEST_URL": f"{normal}/ingest"}
    code, output = _night(first, _scripts(gitlab["script"]), {**env, **staging})
    assert code == EXIT_OK, output[-3000:]
    assert "tonight's run becomes the baseline" in output
    baseline = first / "reports" / "mixed.json"
    assert _room(baseline)["backend"]["queries_per_request"] == 1
    devices = [r for r in json.loads(baseline.read_text())["requests"] if r["kind"] == "device"]
    assert devices  # the devices' HTTP ingest, with what the backend said of it
    assert all(r["backend"]["queries_per_request"] == 1 for r in devices)
    assert (first / "reports" / "junit.xml").exists()

    github = yaml.safe_load((NIGHTLY / "github-workflow.yml").read_text())["jobs"]["stress"]
    second = tmp_path / "night-2"
    (second / "previous").mkdir(parents=True)
    shutil.copy(baseline, second / "previous" / "mixed.json")  # the artifact it downloads
    steps = _scripts([step["run"] for step in github["steps"] if "run" in step])
    staging = {"STAGING_URL": slow, "STAGING_INGEST_URL": f"{slow}/ingest"}
    code, output = _night(second, steps, {**env, **staging})
    assert code == EXIT_SLA, output[-3000:]
    flat = " ".join(output.split())
    assert f"BROKEN {ROOM}: queries" in flat
    current = second / "reports" / "mixed.json"
    room = _room(current)["backend"]
    assert room["queries_per_request"] > 1000
    assert room["n_plus_one"] is not None
    data = json.loads(current.read_text())
    assert [entry["name"] for entry in data["n_plus_one"]] == [ROOM]
    assert simulate("compare", str(current), str(current)).returncode == EXIT_OK
