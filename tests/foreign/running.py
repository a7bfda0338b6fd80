"""The foreign test backend as a process on a free port, stopped on the way out, and the
team's export of its provisioned devices."""

from __future__ import annotations

import contextlib
import csv
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

from simulator.backend.broker import free_port
from tests.conftest import wait_listening
from tests.helpers import ROOT


@contextlib.contextmanager
def foreign_app(database: Path, *args: str) -> Iterator[str]:
    """``python -m tests.foreign.server`` over ``database`` with ``args``; its URL."""
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "tests.foreign.server", "--port", str(port)),
            *("--database", str(database), *args),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def dashed(value: str) -> str:
    """A UUID as Django's SQLite stores it (32 hex digits) in its usual form."""
    return str(uuid.UUID(value))


def export_devices(database: Path, path: Path) -> set[str]:
    """The team's export of its provisioned sensors (read from the app's own database, as
    a team's export would be) as a device map: device_id, type, farm_id (the site),
    room_id (the pen); the sensors' IDs."""
    kinds = {"mic": "cough_monitor", "climate": "climate_node"}
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT s.id, s.kind, p.site_id, s.pen_id FROM foreign_sensor s "
            "JOIN foreign_pen p ON p.id = s.pen_id ORDER BY p.site_id, p.label, s.id"
        ).fetchall()
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["device_id", "type", "farm_id", "room_id"])
        for sensor, kind, site, pen in rows:
            writer.writerow([dashed(sensor), kinds[kind], dashed(site), dashed(pen)])
    return {dashed(row[0]) for row in rows}
