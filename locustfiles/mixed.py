"""Mixed load: dashboard users and the device fleet in one Locust run, one report.

    BARNSTORM_FARMS=500 BARNSTORM_MQTT=mqtt://broker:1883 \\
        locust -f locustfiles/mixed.py --host http://127.0.0.1:8080

At test start this Locust process starts barnstorm's device engine as a child process
(``simulate run --stream-results``: asyncio never shares a process with gevent) and turns
every device result it streams back into a Locust request event, so devices appear
beside the dashboard endpoints in Locust's web UI, CSV, JSON and HTML report
(``MQTT publish cough_monitor``). Stopping the test interrupts the fleet, which settles
its books and flushes its last results before it exits.

The fleet is configured with the same ``BARNSTORM_*`` environment variables as
``simulate`` (``BARNSTORM_FARMS``, ``BARNSTORM_MQTT``, ``BARNSTORM_HTTP``,
``BARNSTORM_SPEED`` ...). Under Locust's workers each worker runs fleet shard
``worker_index`` of ``BARNSTORM_WORKER_COUNT``.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import gevent
import orjson
from gevent import subprocess
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

try:
    from locustfiles.dashboard import DashboardUser
except ImportError:  # run by the `locust` script: this file's folder is on sys.path
    from dashboard import DashboardUser  # type: ignore[no-redef,import-not-found]

__all__ = ["DashboardUser"]

_fleet: dict[str, Any] = {}


def _fire(environment: Environment, line: bytes) -> None:
    try:
        batch = orjson.loads(line)
    except orjson.JSONDecodeError:
        return
    fire = environment.events.request.fire
    for device_type, transport, latency, size, error in batch.get("results", ()):
        fire(
            request_type=transport,
            name=f"publish {device_type}" if transport == "MQTT" else f"ingest {device_type}",
            response_time=latency or 0.0,
            response_length=size,
            exception=RuntimeError(error) if error else None,
            context={},
        )


def _read(environment: Environment, process: Any) -> None:
    for line in process.stdout:
        _fire(environment, line)


@events.test_start.add_listener
def start_fleet(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        return  # the workers run the fleet; the master merges their stats
    index, count = 0, 1
    if isinstance(environment.runner, WorkerRunner):
        index = environment.runner.worker_index
        count = int(os.environ.get("BARNSTORM_WORKER_COUNT", "1"))
    duration = os.environ.get("BARNSTORM_DURATION", "3650d")  # until the test stops
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator",
            "run",
            "--stream-results",
            "--quiet",
            "--duration",
            duration,
            "--shard",
            f"{index}/{count}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    _fleet["process"] = process
    _fleet["reader"] = gevent.spawn(_read, environment, process)


@events.test_stop.add_listener
def stop_fleet(environment: Environment, **_: Any) -> None:
    process = _fleet.pop("process", None)
    reader = _fleet.pop("reader", None)
    if process is None:
        return
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # the fleet settles and flushes its last results
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
    if reader is not None:
        reader.join(timeout=10)
