"""barnstorm as anyone installing a release gets it: the wheel built from this checkout,
installed in a fresh virtualenv, run from a directory that is not the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.backend.broker import free_port
from tests.conftest import wait_listening
from tests.helpers import ROOT

pytestmark = pytest.mark.slow


def clean_copy(destination: Path) -> Path:
    """The checkout's files as git sees them (committed, or new and not ignored), copied
    without what a build or an editable install left behind (egg-info, build/, caches),
    which could put back files the package data forgot."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the work tree, not yet in a commit
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    return destination


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of a new virtualenv with the wheel built from a clean copy of this
    checkout installed."""
    root = tmp_path_factory.mktemp("wheel")
    source = clean_copy(root / "source")
    assert not list(source.glob("*.egg-info"))
    dist = root / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("barnstorm-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    return venv / "bin"


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory far from the checkout."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def _env() -> dict[str, str]:
    """The environment without anything that could lead back to the checkout."""
    return {
        k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("BARNSTORM")
    }


def _run(
    bin_dir: Path, cwd: Path, *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / args[0]), *args[1:]],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_the_wheel_carries_farms_profiles_scenarios_and_locustfiles(
    installed: Path, elsewhere: Path
) -> None:
    """The installed package finds its shipped data inside its own install, not in the
    checkout: every folder is there, with the files the checkout has."""
    script = (
        "import json; from simulator.resources import shipped; "
        "print(json.dumps({k: sorted(p.name for p in shipped(k).iterdir() if p.is_file()) "
        "for k in ('farms', 'device_profiles', 'scenarios', 'locustfiles')} | "
        "{'where': str(shipped('farms'))}))"
    )
    found = json.loads(_run(installed, elsewhere, "python", "-c", script).stdout)
    assert Path(found.pop("where")).is_relative_to(installed.parent)
    for kind, names in found.items():
        assert names == sorted(p.name for p in (ROOT / kind).iterdir() if p.is_file()), kind


def test_simulate_runs_the_embedded_default_from_anywhere(installed: Path, elsewhere: Path) -> None:
    """`simulate --farms 5` from the wheel, in another directory, publishes through its
    embedded broker to its reference backend, which stores every message (its read-back)."""
    done = _run(
        installed,
        elsewhere,
        *("simulate", "--farms", "5", "--speed", "60", "--duration", "10m"),
        *("--quiet", "--report", "report.json"),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((elsewhere / "report.json").read_text())
    accounting = report["accounting"]
    assert accounting["expected"] > 50
    assert accounting["received"] == accounting["expected"]
    assert accounting["lost"] == 0


def test_simulate_fleet_lists_from_anywhere(installed: Path, elsewhere: Path) -> None:
    """`simulate fleet` from the wheel builds the fleet from the shipped templates."""
    done = _run(installed, elsewhere, "simulate", "fleet", "--farms", "3")
    assert done.returncode == 0, done.stderr[-2000:]
    fleet = json.loads(done.stdout)
    assert len(fleet["farms"]) == 3


@pytest.fixture
def served(installed: Path, elsewhere: Path) -> Iterator[str]:
    """The installed reference backend, on a free port."""
    port = free_port()
    process = subprocess.Popen(
        [str(installed / "simulate"), "serve", "--port", str(port), "--database", "db.sqlite"],
        cwd=elsewhere,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, process, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def test_simulate_mixed_runs_from_anywhere(
    installed: Path, elsewhere: Path, served: str, mosquitto: str
) -> None:
    """A short `simulate mixed` from the wheel finds its shipped locustfile: dashboard users
    and the devices' MQTT publishes both reach Locust's statistics."""
    done = _run(
        installed,
        elsewhere,
        *("simulate", "mixed", "--farms", "2", "--users", "2", "--spawn-rate", "2"),
        *("--run-time", "15s", "--speed", "60", "--host", served, "--mqtt", mosquitto),
        *("--json", "--only-summary"),
        timeout=120,
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    stats = json.loads(done.stdout)
    requests = {(row["method"], row["name"]): row["num_requests"] for row in stats}
    devices = [n for (method, name), n in requests.items() if method == "MQTT"]
    dashboards = [n for (method, name), n in requests.items() if " /api/" in name]
    assert sum(devices) > 0, requests
    assert sum(dashboards) > 0, requests
