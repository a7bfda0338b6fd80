"""Faults: reconnect backoff, the TCP fault proxy, and a broker restart plus a network cut
while a fleet publishes at QoS 1, with the books checked by an independent subscriber."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulator.backend.broker import free_port
from simulator.transports.faultproxy import FaultProxy
from simulator.transports.mqtt.settings import backoff_delay
from simulator.units import parse_instant
from tests.helpers import ROOT


def test_reconnect_backoff_is_exponential_with_full_jitter() -> None:
    """The n-th retry waits a uniform time in [0, min(cap, base * 2^n)]: bounded by the cap,
    spread over the whole range (so devices do not return in lockstep)."""
    rng = random.Random(1)
    for attempt, bound in ((0, 1.0), (3, 8.0), (10, 60.0), (100, 60.0)):
        delays = [backoff_delay(attempt, 1.0, 60.0, rng) for _ in range(2000)]
        assert 0.0 <= min(delays) < 0.05 * bound
        assert 0.95 * bound < max(delays) <= bound
        assert abs(sum(delays) / len(delays) - bound / 2) < 0.05 * bound


async def _echo_server() -> tuple[asyncio.Server, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _round_trip(port: int, payload: bytes, timeout: float = 5.0) -> float:
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        await asyncio.wait_for(reader.readexactly(len(payload)), timeout)
        return time.monotonic() - started
    finally:
        writer.close()


@pytest.mark.slow
async def test_fault_proxy_cuts_delays_throttles_blackholes_and_refuses() -> None:
    """Through the proxy an echo server answers as directly; then latency delays each way,
    a throttle stretches a large transfer, a blackhole swallows everything until cleared, a
    cut closes open connections and refuse turns new ones away."""
    server, target = await _echo_server()
    async with server, FaultProxy("127.0.0.1", target) as proxy:
        assert await _round_trip(proxy.port, b"ping") < 0.5

        proxy.apply("latency", latency_ms=200)
        assert await _round_trip(proxy.port, b"ping") >= 0.4  # there and back
        proxy.clear()

        proxy.apply("throttle", bandwidth=20_000)
        assert await _round_trip(proxy.port, b"x" * 30_000) >= 1.2
        proxy.clear()

        proxy.apply("blackhole")
        with pytest.raises(TimeoutError):
            await _round_trip(proxy.port, b"ping", timeout=1.0)
        proxy.clear()
        assert await _round_trip(proxy.port, b"ping") < 0.5

        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"hello")
        assert await reader.readexactly(5) == b"hello"
        proxy.apply("cut")
        assert await asyncio.wait_for(reader.read(), 2) == b""  # closed under us
        writer.close()

        proxy.apply("refuse")
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()
        proxy.clear()
        assert await _round_trip(proxy.port, b"back") < 0.5


class PrivateBroker:
    """A Mosquitto of the test's own (persistent sessions on disk), to restart at will."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {folder}/\nlog_dest none\nset_tcp_nodelay true\n"
            "max_queued_messages 0\n" + ("user root\n" if os.geteuid() == 0 else "")
            # As root, mosquitto would drop to its own user, which cannot write here.
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = subprocess.Popen([binary, "-c", str(self.config)])
        deadline = time.monotonic() + 10
        while not _listening(self.port):
            assert time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # saves the sessions to disk
            self.process.wait(10)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    broker = PrivateBroker(tmp_path)
    broker.start()
    yield broker
    broker.stop()


@pytest.mark.slow
def test_broker_restart_and_a_network_cut_at_qos1_keep_the_books(
    tmp_path: Path, private_broker: PrivateBroker
) -> None:
    """A fleet publishes at QoS 1 through a scenario's fault proxy, which cuts every
    connection a quarter in; halfway the broker itself restarts. Devices come back (with
    jittered backoff) and the run completes. The books balance, every message the report
    counts as acknowledged reached an independent subscriber (a persistent paho session),
    and every message the subscriber did not get is one the report counts as failed,
    dropped or in flight."""
    topic_root = f"faults/{uuid.uuid4().hex[:8]}"
    seen: dict[str, set[int]] = {}
    latest = [0.0]  # the latest measurement time seen, in simulated epoch seconds
    lock = threading.Lock()

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        payload = json.loads(message.payload)
        with lock:
            seen.setdefault(payload["device_id"], set()).add(payload["seq"])
            latest[0] = max(latest[0], parse_instant(payload["ts"]))

    subscribed = threading.Event()
    observer = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"observer-{uuid.uuid4().hex[:8]}",
        clean_session=False,
    )
    observer.reconnect_delay_set(1, 1)
    observer.on_message = on_message
    observer.on_connect = lambda c, *a: c.subscribe(f"{topic_root}/#", qos=1)
    observer.on_subscribe = lambda *a: subscribed.set()
    observer.connect("127.0.0.1", private_broker.port)
    observer.loop_start()
    assert subscribed.wait(10)

    scenario = tmp_path / "cut.toml"
    scenario.write_text('[[events]]\ntype = "network_fault"\nfault = "cut"\nat = "10m"\n')
    report_file = tmp_path / "report.json"
    run = subprocess.Popen(
        [
            *(sys.executable, "-m", "simulator", "--farms", "2", "--clean", "--quiet"),
            *("--mqtt", f"mqtt://127.0.0.1:{private_broker.port}", "--qos", "1"),
            *("--speed", "120", "--duration", "40m", "--connect-rate", "0"),
            *("--start", "2026-01-01T00:00:00Z"),
            *("--reconnect-backoff", "0.2s,2s", "--scenario", str(scenario)),
            *("--topic-template", f"{topic_root}/{{device_id}}/{{kind}}"),
            *("--report", str(report_file), "--allow-loss", "--max-failed", "100%"),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Halfway, by the traffic itself: once messages measured at minute 20 arrive (the
        # cut was at minute 10), whatever the machine's speed.
        halfway = parse_instant("2026-01-01T00:20:00Z")
        deadline = time.monotonic() + 90
        while latest[0] < halfway:
            assert time.monotonic() < deadline, "the run never got halfway"
            assert run.poll() is None, run.communicate()
            time.sleep(0.1)
        private_broker.stop()
        time.sleep(1)
        private_broker.start()
        _, stderr = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, stderr[-2000:]
    report = json.loads(report_file.read_text())
    totals = report["totals"]
    assert totals["sent"] == (
        totals["acknowledged"] + totals["failed"] + totals["dropped"] + totals["in_flight"]
    )
    assert report["connections"]["reconnected"] >= report["fleet"]["devices_in_run"]

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with lock:
            received = sum(len(s) for s in seen.values())
        if received >= totals["acknowledged"]:
            break
        time.sleep(0.2)
    observer.disconnect()
    observer.loop_stop()
    with lock:
        received = sum(len(s) for s in seen.values())
        highest = {device: max(seqs) for device, seqs in seen.items()}
        gaps = sum(highest[d] + 1 - len(seqs) for d, seqs in seen.items())
    assert totals["acknowledged"] > 0
    missing = {d: sorted(set(range(highest[d] + 1)) - seqs) for d, seqs in seen.items()}
    assert received >= totals["acknowledged"], (totals, report["connections"], missing)
    unsettled = totals["failed"] + totals["dropped"] + totals["in_flight"]
    assert totals["sent"] - received <= unsettled  # what the subscriber lacks is accounted
    assert gaps <= unsettled


@pytest.mark.slow
def test_two_runs_of_one_fleet_on_one_broker_are_told_why_they_fight(
    private_broker: PrivateBroker,
) -> None:
    """Two runs of the same fleet on one broker given the same --client-id-prefix take over
    each other's connections: the broker closes connections it has just accepted, and a
    run's summary says so and names --client-id-prefix. With a prefix each, and with none
    at all (each run then takes ids of its own), no connection is lost in either run."""

    def pair(first: str | None, second: str | None) -> list[subprocess.CompletedProcess[str]]:
        environment = {
            k: v for k, v in os.environ.items() if k not in ("BARNSTORM_CLIENT_ID_PREFIX",)
        }
        runs = [
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "simulator", "--farms", "1", "--quiet"),
                    *("--speed", "60", "--duration", "5m", "--clean"),
                    *("--mqtt", f"mqtt://127.0.0.1:{private_broker.port}"),
                    *("--reconnect-backoff", "0.1s,0.3s", "--allow-loss", "--max-failed", "100%"),
                ],
                cwd=ROOT,
                env={
                    **environment,
                    **({"BARNSTORM_CLIENT_ID_PREFIX": prefix} if prefix else {}),
                    "COLUMNS": "200",
                },
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for prefix in (first, second)
        ]
        return [subprocess.CompletedProcess(r.args, r.wait(120), *r.communicate()) for r in runs]

    fighting = pair("same-", "same-")
    summaries = "".join(run.stdout for run in fighting)
    assert "within a second of accepting them" in summaries, summaries
    assert "--client-id-prefix" in summaries

    for apart in (pair("first-", "second-"), pair(None, None)):
        for run in apart:
            assert run.returncode == 0, run.stdout + run.stderr
            assert "0 lost" in run.stdout, run.stdout
            assert "within a second" not in run.stdout
