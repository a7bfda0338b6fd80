"""Shared fixtures: the real Mosquitto broker, an independent subscriber, reference backends."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulator.backend.broker import free_port

ROOT = Path(__file__).resolve().parent.parent

# Every `simulate` a test starts takes client ids of this test session's own, so parallel
# test runs on the shared broker never take each other's connections.
os.environ.setdefault("BARNSTORM_CLIENT_ID_PREFIX", f"bstest-{uuid.uuid4().hex[:8]}-")
# The reference backends the tests start, and the runs that read them back, share one
# read-back token (simulate serve and simulate --readback both read the variable).
READBACK_TOKEN = os.environ.setdefault("BARNSTORM_READBACK_TOKEN", f"bstest-{uuid.uuid4().hex}")
READBACK_HEADERS = {"authorization": f"Bearer {READBACK_TOKEN}"}
MOSQUITTO_HOST = "127.0.0.1"
MOSQUITTO_PORT = 1883
REPORT_SCHEMA = ROOT / "docs" / "reference" / "report.schema.json"


def run_reports(folder: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The run reports (``simulate run``/``soak --report``) written under ``folder``."""
    for path in folder.rglob("*.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        # A mixed run's or a comparison's report ("kind") is another shape.
        if isinstance(data, dict) and {"totals", "outcome"} <= data.keys() and "kind" not in data:
            yield path, data


@pytest.fixture(autouse=True)
def reports_follow_their_schema(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that had a tmp_path: each run report it wrote is valid against
    docs/reference/report.schema.json, the schema the docs publish (every run of the
    suite, under faults, loss, verification and SLAs, checks the schema holds)."""
    if "tmp_path" not in request.fixturenames:
        yield
        return
    folder: Path = request.getfixturevalue("tmp_path")  # now, so that it outlives this
    yield
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads(REPORT_SCHEMA.read_text()))
    for path, data in run_reports(folder):
        errors = sorted(validator.iter_errors(data), key=lambda e: e.json_path)
        assert not errors, f"{path.name}: " + "; ".join(
            f"{e.json_path}: {e.message[:200]}" for e in errors[:5]
        )


def port_open(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


@pytest.fixture(scope="session")
def mosquitto() -> str:
    """The machine's Mosquitto on 127.0.0.1:1883, started if it is not running."""
    if not port_open(MOSQUITTO_HOST, MOSQUITTO_PORT):
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        subprocess.run([binary, "-d", "-c", "/etc/mosquitto/mosquitto.conf"], check=True)
        deadline = time.monotonic() + 10
        while not port_open(MOSQUITTO_HOST, MOSQUITTO_PORT):
            if time.monotonic() > deadline:
                raise RuntimeError("mosquitto did not start on 127.0.0.1:1883")
            time.sleep(0.1)
    return f"mqtt://{MOSQUITTO_HOST}:{MOSQUITTO_PORT}"


@dataclass
class Observer:
    """An independent MQTT subscriber (paho, not barnstorm's own client) recording every message."""

    topic_filter: str
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((message.topic, json.loads(message.payload)))

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def pairs(self) -> set[tuple[str, int]]:
        """The (device_id, seq) pairs received so far."""
        with self.lock:
            return {(payload["device_id"], payload["seq"]) for _, payload in self.messages}

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count() < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def check_delivery(self, totals: dict[str, Any], confirmed: str = "acknowledged") -> None:
        """Every confirmed message of a report arrived here, each device's seq runs from 0
        without a gap, and the only repeats are the duplicates the report says went out."""
        self.wait_for(totals[confirmed] + totals["duplicates_out"])
        assert self.count() == totals[confirmed] + totals["duplicates_out"]
        seqs: dict[str, list[int]] = {}
        for _, payload in self.messages:
            seqs.setdefault(payload["device_id"], []).append(payload["seq"])
        for device, received in seqs.items():
            assert sorted(set(received)) == list(range(len(set(received)))), device
        assert sum(len(r) - len(set(r)) for r in seqs.values()) == totals["duplicates_out"]


@pytest.fixture
def topic_root() -> str:
    """A topic prefix no other test (or run) publishes under."""
    return f"bstest/{uuid.uuid4().hex[:12]}"


@contextmanager
def observing(
    topic_filter: str, port: int = MOSQUITTO_PORT, login: tuple[str, str] | None = None
) -> Iterator[Observer]:
    """A paho subscriber on ``topic_filter`` at QoS 2 on the broker at 127.0.0.1:``port``
    (with ``login``, as that user), subscribed before the block runs."""
    watcher = Observer(topic_filter)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"observer-{uuid.uuid4().hex}")
    if login is not None:
        client.username_pw_set(*login)
    client.max_queued_messages_set(0)
    client.on_message = watcher.on_message
    subscribed = threading.Event()
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect(MOSQUITTO_HOST, port)
    client.loop_start()
    try:
        client.subscribe(watcher.topic_filter, qos=2)
        assert subscribed.wait(10), "the observer's subscription was not acknowledged"
        yield watcher
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def observer(mosquitto: str, topic_root: str) -> Iterator[Observer]:
    """A paho subscriber on ``topic_root/#`` at QoS 2, connected before the test runs."""
    with observing(f"{topic_root}/#") as watcher:
        yield watcher


def wait_listening(port: int, process: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    """Return once ``process`` listens on ``port``; fail if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the backend exited at start"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("the backend did not listen")


class Backends:
    """`simulate serve` processes on free ports, stopped after the test."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.processes: list[subprocess.Popen[bytes]] = []

    def __call__(
        self,
        *args: str,
        port: int | None = None,
        database: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> str:
        port = port or free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "simulator",
                "serve",
                "--port",
                str(port),
                "--database",
                str(database or self.folder / "backend.db"),
                *args,
            ],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(process)
        wait_listening(port, process)
        return f"http://127.0.0.1:{port}"

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                process.wait(10)


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backends]:
    """Start reference backends as real processes."""
    backends = Backends(tmp_path)
    yield backends
    backends.stop_all()
