"""Mixed load on Locust's master and workers, the fleet in the web UI, and trace context."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from simulator.backend.broker import free_port
from simulator.fleet.build import DEFAULT_SEED
from simulator.fleet.load import load_fleet
from simulator.traces.context import flow_key, read_trace_id, tag
from tests.conftest import READBACK_HEADERS, Backends, Observer
from tests.helpers import ROOT, simulate

pytestmark = pytest.mark.slow  # every test here starts a process or a broker

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")


def test_two_locust_workers_run_every_farm_exactly_once(
    tmp_path: Path, backend: Backends, mosquitto: str, topic_root: str, observer: Observer
) -> None:
    """`simulate mixed --processes 2` (Locust's master and two workers, with its web UI):
    each worker runs its own half of the farms, so the backend hears every device of every
    farm and no message twice (no device ran in both workers, no client id clashed), and
    the web UI's "Device fleet" table showed both shards and all devices connected. Judged
    twice, by the backend's store and by an independent paho subscriber on the broker."""
    farms = 4
    fleet, _ = load_fleet(farms, DEFAULT_SEED, None, None)
    url = backend("--farms", str(farms), "--mqtt", mosquitto, "--topic", f"{topic_root}/#")
    web_port = free_port()
    env = {
        **os.environ,
        "BARNSTORM_CLEAN": "1",  # no deliberate duplicates: any duplicate is a double run
        "BARNSTORM_CONNECT_RATE": "0",
        "BARNSTORM_TOPIC_TEMPLATE": f"{topic_root}/{{device_id}}/{{kind}}",
        "BARNSTORM_DASHBOARD_MAP": str(ROOT / "locustfiles" / "dashboard_map.toml"),
    }
    load = ["--farms", str(farms), "--users", "2", "--spawn-rate", "2", "--run-time", "12s"]
    targets = ["--host", url, "--mqtt", mosquitto, "--speed", "120"]
    locust_args = ["--web-ui", "--autostart", "--autoquit", "2", "--processes", "2"]
    web = ["--web-host", "127.0.0.1", "--web-port", str(web_port)]
    locust = subprocess.Popen(
        [sys.executable, "-m", "simulator", "mixed", *load, *targets, *locust_args, *web],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    tables: list[list[dict[str, Any]]] = []
    try:
        deadline = time.monotonic() + 120
        while locust.poll() is None and time.monotonic() < deadline:
            try:
                stats = httpx.get(f"http://127.0.0.1:{web_port}/stats/requests", timeout=2).json()
                for extended in stats.get("extended_stats", []):
                    if extended["key"] == "barnstorm-fleet":
                        tables.append(extended["data"])
            except (httpx.TransportError, ValueError):
                pass
            time.sleep(0.5)
        _, stderr = locust.communicate(timeout=60)
    finally:
        if locust.poll() is None:
            locust.kill()
    assert locust.returncode == 0, stderr[-3000:]

    running = [t for t in tables if sum(row["state"] == "running" for row in t) == 2]
    assert running, tables[-3:]
    shards = {row["shard"] for row in running[-1]}
    assert shards == {"1 of 2", "2 of 2", "total"}
    connected = max(next(r for r in t if r["shard"] == "total")["connected"] for t in running)
    assert connected == len(fleet.devices.ids)
    assert max(next(r for r in t if r["shard"] == "total")["rate"] for t in running) > 0

    deadline = time.monotonic() + 10
    readback = httpx.get(f"{url}/api/readback", headers=READBACK_HEADERS).json()
    while set(readback["devices"]) != set(fleet.devices.ids) and time.monotonic() < deadline:
        time.sleep(0.3)
        readback = httpx.get(f"{url}/api/readback", headers=READBACK_HEADERS).json()
    assert set(readback["devices"]) == set(fleet.devices.ids)  # every farm ran
    assert readback["duplicates"] == 0  # ... and only once
    seen = observer.pairs()
    assert {device for device, _ in seen} == set(fleet.devices.ids)
    assert observer.count() == len(seen)  # no (device, seq) twice


def test_every_http_request_carries_trace_context(tmp_path: Path, backend: Backends) -> None:
    """HTTP ingest requests carry a W3C traceparent (a new trace each, its id tagged with
    the run, the flow and the device type, marked sampled under --trace-sample 1), a
    baggage naming the run and the device type, and, when asked, a sentry-trace for the
    same trace with the same decision; the backend's access log sees them."""
    access_log = tmp_path / "access.jsonl"
    url = backend("--farms", "2", "--access-log", str(access_log))
    result = simulate(
        *("--farms", "2", "--http", f"{url}/ingest", "--speed", "max", "--duration", "30m"),
        "--quiet",
        env={
            "BARNSTORM_RUN_ID": "trace-test",
            "BARNSTORM_SENTRY_TRACE": "1",
            "BARNSTORM_TRACE_SAMPLE": "1",
        },
    )
    assert result.returncode == 0, result.stderr
    requests = [json.loads(line) for line in access_log.read_text().splitlines()]
    ingest = [r for r in requests if r["path"] == "/ingest"]
    assert len(ingest) > 50
    flows = set()
    for request in ingest:
        match = TRACEPARENT.match(request["traceparent"])
        assert match, request
        assert request["sentry-trace"] == f"{match[1]}-{match[2]}-1"
        baggage = dict(item.split("=") for item in request["baggage"].split(","))
        assert baggage["barnstorm.run"] == "trace-test"
        assert baggage["barnstorm.flow"] == "ingest"
        name = unquote(baggage["barnstorm.request"])
        flows.add(name)
        key = read_trace_id(bytes.fromhex(match[1]), tag("trace-test", 2))
        assert key == flow_key("ingest", name)
    assert flows == {"ingest cough_monitor", "ingest climate_node", "ingest gateway"}
    assert len({r["traceparent"] for r in ingest}) == len(ingest)
