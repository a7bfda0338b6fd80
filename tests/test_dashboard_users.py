"""Dashboard users: a real headless Locust against the reference backend."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.dashboard import dig, load_map
from simulator.errors import ConfigError
from tests.helpers import ROOT, simulate
from tests.test_backend import Backends, backend  # noqa: F401 - the fixture


def test_locust_users_browse_every_view_of_the_fleet(tmp_path: Path, backend: Backends) -> None:  # noqa: F811
    """Locust users log in and open the farm list, farm overviews, 7-day room charts and
    device pages of the same fleet the devices published for, without a failure; each
    request carries a W3C traceparent."""
    url = backend("--farms", "3")
    seeded = simulate(
        "--farms", "3", "--http", f"{url}/ingest", "--speed", "max", "--duration", "2h", "--quiet"
    )
    assert seeded.returncode == 0, seeded.stderr
    fast_map = tmp_path / "map.toml"
    text = (ROOT / "locustfiles" / "dashboard_map.toml").read_text()
    fast_map.write_text(re.sub(r"think = \[[^\]]*\]", "think = [0.05, 0.2]", text))
    env = {**os.environ, "BARNSTORM_FARMS": "3", "BARNSTORM_DASHBOARD_MAP": str(fast_map)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            "locustfiles/dashboard.py",
            "--headless",
            "-u",
            "8",
            "-r",
            "8",
            "-t",
            "10s",
            "--host",
            url,
            "--json",
            "--only-summary",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    entries = {entry["name"]: entry for entry in json.loads(result.stdout)}
    for name in (
        "POST /api/login",
        "GET /api/farms",
        "GET /api/farms/[farm_id]",
        "GET /api/farms/[id]/rooms/[id] (7 days)",
        "GET /api/devices/[device_id]",
        "GET /api/alerts",
    ):
        assert name in entries, sorted(entries)
        assert entries[name]["num_requests"] > 0
        assert entries[name]["num_failures"] == 0, (name, entries[name])


def test_dashboard_map_errors_name_the_place(tmp_path: Path) -> None:
    """A map with an unknown placeholder or a bad status is refused, naming file and key."""
    bad = tmp_path / "map.toml"
    bad.write_text('[views.x]\n[[views.x.requests]]\nurl = "/farms/{farm}"\n')
    with pytest.raises(
        ConfigError, match=r"map.toml: views.x.requests\[0\].url: unknown placeholder"
    ):
        load_map(bad)
    bad.write_text('[views.x]\n[[views.x.requests]]\nurl = "/farms"\nexpect = 99\n')
    with pytest.raises(ConfigError, match=r"views.x.requests\[0\].expect"):
        load_map(bad)
    assert dig([{"id": 7}], "0.id") == 7
    assert dig([], "0.id") is None
