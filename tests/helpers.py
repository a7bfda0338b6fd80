"""Helpers for tests that run the real ``simulate`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str

    def report(self, path: Path) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(path.read_text())
        return data


def simulate(
    *args: str, env: dict[str, str] | None = None, timeout: float = 240, cwd: Path | None = None
) -> Completed:
    """Run the real ``simulate`` command (``python -m simulator``) and capture its output."""
    environment = {**os.environ, "COLUMNS": "160", **(env or {})}
    process = subprocess.run(
        [sys.executable, "-m", "simulator", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        cwd=cwd or ROOT,
        stdin=subprocess.DEVNULL,
    )
    return Completed(process.returncode, process.stdout, process.stderr)


def seed_history(ingest_url: str, farms: int, days: int, batch: int) -> None:
    """Fill a backend with the last ``days`` of a fleet's telemetry, as fast as it goes
    (``--speed max`` over HTTP, ``batch`` messages a request); the run must exit 0."""
    start = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
    seeded = simulate(
        *("--farms", str(farms), "--http", ingest_url, "--http-batch", str(batch), "--quiet"),
        *("--speed", "max", "--start", start, "--duration", f"{days}d"),
    )
    assert seeded.returncode == 0, seeded.stderr


def locust_stats(*command: str, env: dict[str, str], timeout: float) -> list[dict[str, Any]]:
    """Run a headless Locust (``locust ...`` or ``simulator mixed ...``, as ``python -m``)
    with ``--json``; it must exit 0; its statistics, one entry per request name."""
    process = subprocess.run(
        [sys.executable, "-m", *command, "--json", "--only-summary"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    # A listener of barnstorm's that raises is logged by Locust and the run goes on: the
    # numbers would look right while a report or an export lost what it missed.
    assert "Uncaught exception in event handler" not in process.stderr, process.stderr[-3000:]
    stats: list[dict[str, Any]] = json.loads(process.stdout)
    return stats
