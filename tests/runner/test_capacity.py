"""`simulate capacity`: a step-load search with real Locust against the reference backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from simulator.exitcodes import EXIT_SLA
from tests.conftest import Backends
from tests.helpers import ROOT, seed_history, simulate

pytestmark = pytest.mark.slow  # every test here starts a process or a broker

#: people who open room charts, a day each, quickly one after the other
ROOM_MAP = """
[login]
url = "/api/login"
body = '{"username": "farmer", "password": "barnstorm"}'

[views.room_detail]
think = [0.1, 0.3]
window_days = 1
[[views.room_detail.requests]]
name = "room chart"
url = "/api/farms/{farm_id}/rooms/{room_id}?from={from}&to={to}"
"""


def _search(url: str, room_map: Path, report: Path) -> tuple[int, dict[str, Any]]:
    steps = ["--users", "1", "--users-step", "2", "--steps", "4", "--step", "6s", "--warmup", "2s"]
    judged = ["--sla", "room chart.p95<100ms", "--report", str(report)]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            "capacity",
            "--host",
            url,
            "--farms",
            "1",
            *steps,
            *judged,
        ],
        cwd=ROOT,
        env={**os.environ, "BARNSTORM_DASHBOARD_MAP": str(room_map)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert report.exists(), result.stdout + result.stderr[-3000:]
    return result.returncode, json.loads(report.read_text())


def test_capacity_search_finds_a_lower_limit_on_a_slow_backend(
    tmp_path: Path, backend: Backends
) -> None:
    """Two reference backends on one database of sixty days of a farm, one with --slow (the
    room chart loads every device's whole history): the search over dashboard users, in
    short steps with an SLA on the room chart, holds longer on the normal backend than on
    the slow one, and names the SLA that broke and the step; every step reports the room
    chart's queries per request from the backend's Server-Timing."""
    database = tmp_path / "shared.db"
    fast = backend("--farms", "1", database=database)
    slow = backend("--farms", "1", "--slow", database=database)
    seed_history(f"{fast}/ingest", farms=1, days=60, batch=100)
    room_map = tmp_path / "rooms.toml"
    room_map.write_text(ROOM_MAP)

    fast_code, fast_result = _search(fast, room_map, tmp_path / "fast.json")
    slow_code, slow_result = _search(slow, room_map, tmp_path / "slow.json")

    def held_users(result: dict[str, Any]) -> int:
        last = result["answer"]["last_held"]
        return int(last["users"]) if last else 0

    assert held_users(slow_result) < held_users(fast_result), (slow_result, fast_result)
    assert fast_code == 0
    broken = slow_result["answer"]["broken"]
    assert broken
    assert broken[0]["sla"] == "room chart.p95<100ms"
    assert slow_code in (0, EXIT_SLA)  # EXIT_SLA when not even the first step held
    for result in (fast_result, slow_result):
        steps = result["steps"]
        assert [s["users"] for s in steps] == [1 + 2 * i for i in range(len(steps))]
        assert all(s["scopes"]["room chart"]["requests"] > 0 for s in steps)
    # Each step carries the backend's Server-Timing: one query per chart, or the N+1's many.
    assert {s["backend"]["room chart"]["queries_per_request"] for s in fast_result["steps"]} == {1}
    assert all(
        s["backend"]["room chart"]["queries_per_request"] > 100 for s in slow_result["steps"]
    )


def test_capacity_refuses_a_search_that_cannot_run() -> None:
    """A plan with nothing growing, a warm-up as long as the step, or farms growing
    without a target is refused with one line naming the flag, exit 2."""
    base = ["capacity", "--host", "http://127.0.0.1:1", "--sla", "dashboard.p95<1s"]
    cases = {
        ("--users", "5"): "--users-step: nothing grows",
        ("--users-step", "5", "--step", "10s", "--warmup", "10s"): "--warmup: expected less",
        ("--farms-step", "5"): "--farms-step: devices need a target",
    }
    for args, message in cases.items():
        result = simulate(*base, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
