"""--verify: an independent subscriber on the broker finds what a broker acknowledged and
never delivered. Over MQTT 3.1.1 a PUBACK carries no reason code, so a Mosquitto whose ACL
refuses a topic, whose message size limit refuses a payload, or whose in-flight quota is
smaller than the QoS 2 window acknowledges those messages all the same; only a subscriber
can tell. A paho subscriber of the test's own checks the observer's count."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from simulator.exitcodes import EXIT_LOSS, EXIT_OK
from simulator.transports.mqtt.observer import SeqBook
from tests.brokers import PASSWORD, USER, mosquitto, restrictive_lines
from tests.conftest import MOSQUITTO_PORT, observing
from tests.helpers import Completed, simulate

FLEET = ("--farms", "2", "--clean", "--quiet", "--speed", "600", "--duration", "30m")


def _run(port: int, root: str, report: Path, *args: str) -> tuple[Completed, dict[str, Any]]:
    result = simulate(
        *FLEET,
        *("--mqtt", f"mqtt://127.0.0.1:{port}", "--verify", "--report", str(report)),
        *("--topic-template", f"{root}/{{device_id}}/{{kind}}"),
        *args,
    )
    return result, json.loads(report.read_text())


@pytest.mark.slow
def test_a_clean_run_is_verified_whole(tmp_path: Path, mosquitto: str) -> None:
    """On the machine's Mosquitto, over 3.1.1 and MQTT 5, over two processes, and with
    three observer connections on a shared subscription, the observer receives every
    acknowledged message once and in order: exit 0."""
    for extra in ([], ["--mqtt-version", "5"], ["--processes", "2"], ["--verify-connections", "3"]):
        root = f"bstest/verify-{uuid.uuid4().hex[:10]}"
        result, report = _run(MOSQUITTO_PORT, root, tmp_path / "r.json", *extra)
        assert result.returncode == EXIT_OK, result.stdout + result.stderr
        verify, totals = report["verify"], report["totals"]
        assert verify["expected"] == totals["acknowledged"] > 100
        assert verify["received"] == verify["expected"]
        assert verify["acknowledged_not_delivered"] == verify["delivered_twice"] == 0
        assert verify["out_of_order"] == 0
        assert "verify: a subscriber on the broker" in result.stdout
        assert report["verify"]["observer"]["connections"] == (3 if extra[-1:] == ["3"] else 1)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("rule", "qos", "extra"),
    [
        ("acl", 1, []),
        ("message_size_limit", 1, []),
        # As fast as it goes: a connection then has far more than 3 in flight.
        ("max_inflight_messages", 2, ["--max-inflight", "200", "--speed", "max"]),
    ],
)
def test_what_a_311_broker_acknowledges_and_drops_is_found(
    tmp_path: Path, rule: str, qos: int, extra: list[str]
) -> None:
    """A Mosquitto that refuses heartbeats by ACL, payloads past 250 bytes by size, or QoS 2
    publishes beyond 3 in flight still acknowledges them over 3.1.1: --verify finds them,
    exactly the messages an independent paho subscriber lacks, names the devices and seq
    ranges, and the run exits 4."""
    root = f"bstest/dropping-{uuid.uuid4().hex[:10]}"
    lines = {
        "acl": restrictive_lines(tmp_path, root),
        "message_size_limit": ["message_size_limit 250"],
        "max_inflight_messages": ["max_inflight_messages 3"],
    }[rule]
    with mosquitto(tmp_path, *lines, logins=True) as port:
        login = ("--username", USER, "--password", PASSWORD)
        with observing(f"{root}/#", port=port, login=(USER, PASSWORD)) as paho:
            result, report = _run(
                port, root, tmp_path / "r.json", "--qos", str(qos), *login, *extra
            )
            paho.wait_for(report["verify"]["received"], 10)
            got_by_paho = paho.pairs()
    assert result.returncode == EXIT_LOSS, result.stdout + result.stderr
    verify, totals = report["verify"], report["totals"]
    assert totals["acknowledged"] == totals["sent"]  # the broker acknowledged everything
    assert verify["acknowledged_not_delivered"] > 0
    assert verify["received"] == len(got_by_paho)
    assert verify["acknowledged_not_delivered"] == totals["acknowledged"] - len(got_by_paho)
    first = verify["lost_ranges"][0]
    assert f"{first['device_id']} seq {first['first_seq']}" in result.stdout
    assert result.stdout.lstrip().startswith("LOST")
    if rule == "acl":  # exactly the heartbeats
        assert all(r["device_id"].startswith("gw-") for r in verify["lost_ranges"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("rule", "reason", "extra"),
    [
        ("acl", "not_authorized", []),
        # Mosquitto states the limit as its Maximum Packet Size: nothing too large leaves.
        ("message_size_limit", "packet_too_large", []),
    ],
)
def test_over_mqtt5_the_same_refusals_are_failures_with_their_reason(
    tmp_path: Path, rule: str, reason: str, extra: list[str]
) -> None:
    """Over MQTT 5 the same Mosquitto says what it refuses (a PUBACK's reason code, a
    CONNACK's Maximum Packet Size): those messages are failures with the reason's name,
    not acknowledgements, and the observer finds nothing the broker acknowledged and
    dropped."""
    root = f"bstest/refusing-{uuid.uuid4().hex[:10]}"
    lines = restrictive_lines(tmp_path, root) if rule == "acl" else ["message_size_limit 250"]
    with mosquitto(tmp_path, *lines, logins=True) as port:
        result, report = _run(
            port,
            root,
            tmp_path / "r.json",
            *("--mqtt-version", "5", "--username", USER, "--password", PASSWORD),
            *("--max-failed", "100%", *extra),
        )
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    totals, verify = report["totals"], report["verify"]
    assert totals["errors"].get(reason, 0) > 0
    assert totals["failed"] == totals["errors"][reason]
    assert verify["acknowledged_not_delivered"] == 0
    assert verify["received"] == totals["acknowledged"]


@pytest.mark.slow
def test_qos2_within_the_brokers_receive_maximum_loses_nothing(tmp_path: Path) -> None:
    """Over MQTT 5 the same small in-flight quota arrives as the broker's Receive Maximum,
    the window keeps to it, and nothing is dropped (over 3.1.1 it was, above)."""
    root = f"bstest/window-{uuid.uuid4().hex[:10]}"
    with mosquitto(tmp_path, "max_inflight_messages 3") as port:
        result, report = _run(
            port, root, tmp_path / "r.json", "--qos", "2", "--mqtt-version", "5", "--speed", "max"
        )
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert report["verify"]["received"] == report["totals"]["acknowledged"] > 100


def test_the_observers_books_count_duplicates_gaps_and_order() -> None:
    """Per device: a run from 0 kept flat, the seqs beyond a gap, repeats as duplicates,
    a seq below the highest seen as out of order; unreadable payloads apart."""
    book = SeqBook()
    for seq in (0, 1, 2, 5, 4, 2, 3, 7):
        book.add(json.dumps({"device_id": "a", "seq": seq}).encode())
    book.add(b"not json")
    book.add(json.dumps({"device_id": "b", "seq": 0}).encode())
    answer = book.answer()
    assert answer["devices"]["a"]["seqs"] == [[0, 5], [7, 7]]
    assert answer["devices"]["a"]["duplicates"] == 1
    assert answer["devices"]["a"]["out_of_order"] == 2  # 4 after 5, 3 after 5
    assert (answer["received"], answer["duplicates"], answer["rejected"]) == (8, 1, 1)
