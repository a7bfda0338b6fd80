"""The interop matrix: the same fleet published to every broker barnstorm meets, at every
QoS each takes, and each run compared with an independent paho subscriber on that broker:
the distinct (device_id, seq) pairs it received are at least the messages acknowledged.

Mosquitto (QoS 0/1/2), amqtt (QoS 0/1/2) and NATS server's MQTT listener (QoS 0/1; it
refuses QoS 2 by closing the connection, which must end in one clear line and exit 1,
not a reconnect loop).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.backend.broker import EmbeddedBroker, free_port
from simulator.exitcodes import EXIT_FAILED, EXIT_OK
from tests.conftest import MOSQUITTO_PORT, observing, port_open
from tests.helpers import simulate

pytestmark = pytest.mark.slow  # every test here starts brokers and runs

#: about 150 messages from 27 devices, in about three seconds.
FLEET = ("--farms", "2", "--clean", "--quiet", "--speed", "900", "--duration", "30m")


def _run_against(port: int, qos: int, tmp_path: Path) -> tuple[int, str, dict[str, Any], int]:
    """A run to 127.0.0.1:``port`` at ``qos``: exit code, stderr, totals, and how many
    distinct (device, seq) pairs a paho subscriber on that broker received."""
    root = f"bstest/interop-{uuid.uuid4().hex[:10]}"
    report = tmp_path / f"report-{port}-{qos}.json"
    with observing(f"{root}/#", port=port) as observer:
        result = simulate(
            *FLEET,
            *("--mqtt", f"mqtt://127.0.0.1:{port}", "--qos", str(qos)),
            *("--topic-template", f"{root}/{{device_id}}/{{kind}}"),
            *("--reconnect-backoff", "0.1s,0.5s", "--report", str(report)),
        )
        totals = json.loads(report.read_text())["totals"] if report.exists() else {}
        observer.wait_for(totals.get("acknowledged", 0) or totals.get("unconfirmed", 0), 10)
        received = len(observer.pairs())
    return result.returncode, result.stderr, totals, received


def _delivered(code: int, stderr: str, totals: dict[str, Any], received: int, qos: int) -> None:
    assert code == EXIT_OK, stderr
    assert totals["sent"] > 100
    settled = "acknowledged" if qos else "unconfirmed"
    assert totals[settled] == totals["sent"]
    assert received >= totals["acknowledged"]
    if qos:
        assert received == totals["acknowledged"]


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mosquitto(mosquitto: str, qos: int, tmp_path: Path) -> None:
    """Mosquitto at QoS 0, 1 and 2: every message settled, and paho got each acknowledged
    one."""
    _delivered(*_run_against(MOSQUITTO_PORT, qos, tmp_path), qos)


@pytest.fixture(scope="module")
def amqtt_port() -> Iterator[int]:
    """amqtt (the embedded default's fallback broker) as a process of its own."""
    loop = asyncio.new_event_loop()
    broker = EmbeddedBroker("amqtt")
    loop.run_until_complete(broker.__aenter__())
    yield broker.port
    loop.run_until_complete(broker.__aexit__(None, None, None))
    loop.close()


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_amqtt(amqtt_port: int, qos: int, tmp_path: Path) -> None:
    """amqtt at QoS 0, 1 and 2: every message settled, and paho got each acknowledged
    one."""
    _delivered(*_run_against(amqtt_port, qos, tmp_path), qos)


@pytest.fixture(scope="module")
def nats_mqtt_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A nats-server of the tests' own: JetStream on, the MQTT listener on a free port."""
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    folder = tmp_path_factory.mktemp("nats")
    port = free_port()
    config = folder / "nats.conf"
    config.write_text(
        f"listen: 127.0.0.1:{free_port()}\nserver_name: barnstorm-test\n"
        f'jetstream {{ store_dir: "{folder}/js" }}\nmqtt {{ listen: 127.0.0.1:{port} }}\n'
    )
    process = subprocess.Popen(
        [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    while not port_open("127.0.0.1", port):
        assert process.poll() is None, "nats-server exited at start"
        assert time.monotonic() < deadline, "nats-server did not open its MQTT listener"
        time.sleep(0.1)
    yield port
    process.terminate()
    process.wait(10)


@pytest.mark.parametrize("qos", [0, 1])
def test_nats(nats_mqtt_port: int, qos: int, tmp_path: Path) -> None:
    """NATS server's MQTT listener at QoS 0 and 1: every message settled, and paho got
    each acknowledged one."""
    _delivered(*_run_against(nats_mqtt_port, qos, tmp_path), qos)


def test_nats_refuses_qos2_in_one_line(nats_mqtt_port: int, tmp_path: Path) -> None:
    """NATS closes the connection over every QoS 2 PUBLISH: each message fails as
    "rejected" after two tries (no endless reconnect loop), and the run exits 1 with one
    line that names the rejection and asks about the QoS."""
    code, stderr, totals, received = _run_against(nats_mqtt_port, 2, tmp_path)
    assert code == EXIT_FAILED
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "rejected" in lines[0]
    assert "QoS" in lines[0]
    # Every message was rejected, or was still between its two tries (in flight, or held
    # by a device whose connection had just dropped) when the run stopped: none was
    # acknowledged, none delivered.
    assert set(totals["errors"]) <= {"rejected", "in_flight_at_stop", "offline_at_stop"}
    assert totals["errors"]["rejected"] > 0
    assert totals["acknowledged"] == 0
    assert received == 0
