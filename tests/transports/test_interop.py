"""The interop matrix: the same fleet published to every broker barnstorm meets, over MQTT
3.1.1 and 5, at every QoS each takes, with --verify on, and every run judged by an
independent paho subscriber of the test's own on that broker.

Brokers: Mosquitto as installed, a restrictive Mosquitto (logins, an ACL refusing the
gateways' heartbeats, an in-flight quota of 5; its message size limit is held in
test_verify.py, as MQTT 5 states it as a packet size and 3.1.1 as a payload's), amqtt, NATS
server's MQTT listener (no QoS 2: it closes the connection over one), and aedes when Node
and its npm package can be had. What must hold everywhere: no message is counted
acknowledged that the broker refused without the run saying so (over MQTT 5 a refusal is a
failure with its reason; over 3.1.1 --verify finds it and the run exits 4), what the
observer received is what paho received, and a healthy broker delivers every message at
every QoS. A broker that refuses MQTT 5 is one clear line, and ``auto`` falls back.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.backend.broker import EmbeddedBroker
from simulator.exitcodes import EXIT_FAILED, EXIT_LOSS, EXIT_OK
from tests.brokers import (
    PASSWORD,
    USER,
    aedes,
    aedes_available,
    mosquitto,
    nats,
    restrictive_lines,
)
from tests.conftest import MOSQUITTO_PORT, observing
from tests.helpers import simulate

pytestmark = pytest.mark.slow  # every test here starts brokers and runs

#: about 150 messages from 27 devices, in about three seconds.
FLEET = ("--farms", "2", "--clean", "--quiet", "--speed", "900", "--duration", "30m")
ROOT = f"bstest/interop-{uuid.uuid4().hex[:8]}"
#: brokers that refuse MQTT 5, and the QoS each takes.
REFUSES_MQTT5 = {"amqtt", "nats", "aedes"}
QOS = {"mosquitto": (0, 1, 2), "restrictive": (0, 1, 2), "amqtt": (0, 1, 2), "nats": (0, 1)}
QOS["aedes"] = (0, 1, 2)


@pytest.fixture(scope="module")
def brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[int, bool]]]:
    """Every broker of the matrix: name -> (port, needs the barn/storm login)."""
    folder = tmp_path_factory.mktemp("brokers")
    loop = asyncio.new_event_loop()
    embedded = EmbeddedBroker("amqtt")
    loop.run_until_complete(embedded.__aenter__())
    # Each run publishes under ROOT/<its own level>/device/kind.
    lines = restrictive_lines(folder, f"{ROOT}/+", "max_inflight_messages 5")
    node = aedes_available(tmp_path_factory.mktemp("aedes"))
    with (
        mosquitto(folder, *lines, logins=True) as restrictive,
        nats(folder) as nats_port,
    ):
        found = {
            "mosquitto": (MOSQUITTO_PORT, False),
            "restrictive": (restrictive, True),
            "amqtt": (embedded.port, False),
            "nats": (nats_port, False),
        }
        if node is None:
            yield found
        else:
            with aedes(node) as aedes_port:
                yield {**found, "aedes": (aedes_port, False)}
    loop.run_until_complete(embedded.__aexit__(None, None, None))
    loop.close()


CASES = [
    (broker, version, qos)
    for broker in ("mosquitto", "restrictive", "amqtt", "nats", "aedes")
    for version in ("3.1.1", "5")
    for qos in QOS[broker]
    if not (version == "5" and broker in REFUSES_MQTT5)
]


def _run(
    port: int, login: bool, version: str, qos: int, tmp_path: Path, *extra: str
) -> tuple[int, str, str, dict[str, Any], set[tuple[str, int]]]:
    """A run with --verify, and the (device, seq) pairs a paho subscriber received."""
    topic = f"{ROOT}/{uuid.uuid4().hex[:8]}"
    report = tmp_path / f"report-{port}-{version}-{qos}.json"
    credentials = ("--username", USER, "--password", PASSWORD) if login else ()
    with observing(f"{topic}/#", port=port, login=(USER, PASSWORD) if login else None) as paho:
        result = simulate(
            *FLEET,
            *("--mqtt", f"mqtt://127.0.0.1:{port}", "--qos", str(qos)),
            *("--mqtt-version", version, "--verify", "--max-failed", "100%"),
            *("--topic-template", f"{topic}/{{device_id}}/{{kind}}"),
            *("--reconnect-backoff", "0.1s,0.5s", "--report", str(report), *credentials),
            *extra,
        )
        data = json.loads(report.read_text()) if report.exists() else {}
        verify = data.get("verify") or {}
        paho.wait_for(verify.get("received", 0), 10)
        received = paho.pairs()
    return result.returncode, result.stdout, result.stderr, data, received


@pytest.mark.parametrize(("broker", "version", "qos"), CASES)
def test_the_matrix(
    brokers: dict[str, tuple[int, bool]], broker: str, version: str, qos: int, tmp_path: Path
) -> None:
    """Every broker, version and QoS: a healthy broker delivers every message to paho; the
    restrictive one's refusals are failures with reasons (MQTT 5) or found by --verify
    (3.1.1, exit 4 at QoS 1 and 2); the observer and paho agree on what arrived."""
    if broker not in brokers:
        pytest.fail(f"{broker} could not be started here (aedes needs Node and npm)")
    port, login = brokers[broker]
    code, stdout, stderr, report, received = _run(port, login, version, qos, tmp_path)
    totals, verify = report["totals"], report["verify"]
    assert totals["sent"] > 100
    assert report["target"]["mqtt_version"] == version
    assert verify["received"] == len(received)  # the observer saw what paho saw
    settled = totals["acknowledged"] + totals["unconfirmed"]
    if broker != "restrictive":
        assert code == EXIT_OK, stdout + stderr
        assert settled == totals["sent"]
        assert len(received) == totals["sent"]  # every message, at every QoS
        return
    # The restrictive broker refuses the gateways' heartbeats (ACL).
    assert len(received) < totals["sent"]
    never = verify["lost"]
    assert never == settled - len(received)
    if version == "5" and qos:
        # Refusals said: failures with reasons, nothing acknowledged went missing.
        assert set(totals["errors"]) == {"not_authorized"}
        assert totals["failed"] == report["by_device_type"]["gateway"]["sent"]
        assert never == 0
        assert code == EXIT_OK, stdout + stderr
    elif qos:
        # Acknowledged all the same over 3.1.1: only --verify can tell, and it does.
        assert totals["acknowledged"] == totals["sent"]
        assert verify["acknowledged_not_delivered"] == never > 0
        assert code == EXIT_LOSS, stdout + stderr
    else:
        # QoS 0: nothing is acknowledged, so nothing acknowledged is lost; what the broker
        # dropped is still counted, and said.
        assert verify["acknowledged_not_delivered"] == 0
        assert never > 0
        assert code == EXIT_OK, stdout + stderr
        assert "never delivered" in stdout


@pytest.mark.parametrize("broker", sorted(REFUSES_MQTT5))
def test_a_broker_that_refuses_mqtt5_is_one_line_and_auto_falls_back(
    brokers: dict[str, tuple[int, bool]], broker: str, tmp_path: Path
) -> None:
    """amqtt, NATS and aedes refuse MQTT 5: --mqtt-version 5 ends in one line naming the
    broker's answer and exit 1 (no silent downgrade); auto runs at 3.1.1 and says so."""
    if broker not in brokers:
        pytest.fail(f"{broker} could not be started here (aedes needs Node and npm)")
    port, _ = brokers[broker]
    code, _, stderr, _, _ = _run(port, False, "5", 1, tmp_path)
    assert code == EXIT_FAILED
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "refused MQTT 5" in lines[0]
    assert "--mqtt-version 3.1.1" in lines[0]
    code, stdout, stderr, report, received = _run(port, False, "auto", 1, tmp_path)
    assert code == EXIT_OK, stdout + stderr
    assert report["target"]["mqtt_version"] == "3.1.1"
    assert "fell back from MQTT 5" in report["target"]["mqtt_version_note"]
    assert "fell back from MQTT 5" in stdout
    assert len(received) == report["totals"]["acknowledged"] > 100


def test_nats_refuses_qos2_in_one_line(
    brokers: dict[str, tuple[int, bool]], tmp_path: Path
) -> None:
    """NATS closes the connection over every QoS 2 PUBLISH: each message fails as
    "rejected" after two tries (no endless reconnect loop), and the run exits 1 with one
    line that names the rejection and asks about the QoS."""
    port, _ = brokers["nats"]
    code, _, stderr, report, received = _run(port, False, "3.1.1", 2, tmp_path)
    assert code == EXIT_FAILED
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "rejected" in lines[0]
    assert "QoS" in lines[0]
    totals = report["totals"]
    # Every message was rejected, or was still between its two tries (in flight, or held
    # by a device whose connection had just dropped) when the run stopped: none was
    # acknowledged, none delivered.
    assert set(totals["errors"]) <= {"rejected", "in_flight_at_stop", "offline_at_stop"}
    assert totals["errors"]["rejected"] > 0
    assert totals["acknowledged"] == 0
    assert received == set()
