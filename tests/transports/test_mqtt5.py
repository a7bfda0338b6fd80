"""MQTT 5 in barnstorm's own client, against a scripted broker that states limits and
refuses: reason codes are failures with their names, the broker's Receive Maximum is the
window, an oversized message never leaves, a DISCONNECT's reason is reported, topic aliases
and user properties go out as MQTT 5 says, and a broker that refuses MQTT 5 is one clear
error (or, asked for, a fallback to 3.1.1 that the transport reports)."""

from __future__ import annotations

import json

import pytest

from simulator.errors import ConnectError
from simulator.messages import Message, Outcome
from simulator.transports.mqtt.lean import LeanMqttTransport
from simulator.transports.mqtt.v5 import (
    MAXIMUM_PACKET_SIZE,
    MAXIMUM_QOS,
    RECEIVE_MAXIMUM,
    SERVER_KEEP_ALIVE,
    TOPIC_ALIAS_MAXIMUM,
    Properties,
    parse_ack,
    parse_connack,
    read_properties,
    user_properties,
)
from tests.transports.hostile import FakeBroker
from tests.transports.test_mqtt_hostile import _client_id, _outcomes, _settings, _until
from tests.transports.test_transport_contract import RecordingSink


def _message(seq: int, topic: str = "t/d0/summary", extra: bytes = b"") -> Message:
    body = json.dumps({"device_id": "d0", "seq": seq}).encode() + extra
    return Message(0, 0, 0, "summary", seq, topic, body, None)


async def _publish(
    broker: FakeBroker, messages: list[Message], qos: int = 1, **options: object
) -> tuple[LeanMqttTransport, RecordingSink]:
    """Connect one MQTT 5 link to ``broker``, send ``messages`` and wait until each has an
    outcome or a second has passed with some still out."""
    sink = RecordingSink()
    settings = _settings(broker.port, qos=qos, version="5", **options)
    transport = LeanMqttTransport(sink, settings, [_client_id()])
    async with transport:
        await transport.connect(0)
        transport.send_many(messages)
        await _until(lambda: len(sink.done) == len(messages), 5.0)
    return transport, sink


async def test_a_refused_publish_is_a_failure_with_its_reason() -> None:
    """PUBACKs with reason codes 0x87 and 0x97 fail their messages as not_authorized and
    quota_exceeded; 0x10 (no matching subscribers) is a success; the rest are
    acknowledged. Nothing refused is counted as delivered."""
    refuse = {b'"seq": 1}': 0x87, b'"seq": 2}': 0x97, b'"seq": 3}': 0x10}
    async with FakeBroker(refuse=refuse) as broker:
        _, sink = await _publish(broker, [_message(seq) for seq in range(5)])
    outcomes = _outcomes(sink)
    assert outcomes[1] == (Outcome.FAILED, "not_authorized")
    assert outcomes[2] == (Outcome.FAILED, "quota_exceeded")
    assert outcomes[3] == (Outcome.ACKNOWLEDGED, None)
    assert {seq for seq, (outcome, _) in outcomes.items() if outcome is Outcome.ACKNOWLEDGED} == {
        0,
        3,
        4,
    }


async def test_a_refused_qos2_publish_ends_at_its_pubrec() -> None:
    """A PUBREC with a refusal fails its QoS 2 message and gets no PUBREL."""
    async with FakeBroker(refuse={b'"seq": 0}': 0x99}) as broker:
        _, sink = await _publish(broker, [_message(0), _message(1)], qos=2)
    assert _outcomes(sink) == {
        0: (Outcome.FAILED, "payload_format_invalid"),
        1: (Outcome.ACKNOWLEDGED, None),
    }


async def test_the_brokers_receive_maximum_is_the_window() -> None:
    """A broker that takes 3 publishes in flight and answers none gets exactly 3; the
    others wait on the device, and are never failed as sent."""
    async with FakeBroker(silent_after=0, limits=[(RECEIVE_MAXIMUM, 3, 2)]) as broker:
        sink = RecordingSink()
        transport = LeanMqttTransport(sink, _settings(broker.port, version="5"), [_client_id()])
        async with transport:
            await transport.connect(0)
            transport.send_many([_message(seq) for seq in range(10)])
            assert await _until(lambda: len(broker.publishes) >= 3, 5.0)
            assert not await _until(lambda: len(broker.publishes) > 3, 0.3)
            assert transport.in_flight == 10  # 3 on the wire, 7 waiting on the device
        assert len(broker.publishes) == 3


async def test_max_inflight_smaller_than_the_receive_maximum_wins() -> None:
    """--max-inflight 2 under a Receive Maximum of 50: 2 in flight."""
    async with FakeBroker(silent_after=0, limits=[(RECEIVE_MAXIMUM, 50, 2)]) as broker:
        sink = RecordingSink()
        settings = _settings(broker.port, version="5", max_inflight=2)
        transport = LeanMqttTransport(sink, settings, [_client_id()])
        async with transport:
            await transport.connect(0)
            transport.send_many([_message(seq) for seq in range(10)])
            assert await _until(lambda: len(broker.publishes) >= 2, 5.0)
            assert not await _until(lambda: len(broker.publishes) > 2, 0.3)


@pytest.mark.parametrize("qos", [0, 1])
async def test_a_message_past_the_maximum_packet_size_never_leaves(qos: int) -> None:
    """With a Maximum Packet Size of 200 bytes, a 500-byte message fails here as
    packet_too_large and is never written; the small ones go out and are settled."""
    async with FakeBroker(limits=[(MAXIMUM_PACKET_SIZE, 200, 4)]) as broker:
        big = _message(1, extra=b" " * 500)
        _, sink = await _publish(broker, [_message(0), big, _message(2)], qos=qos)
    settled = Outcome.ACKNOWLEDGED if qos else Outcome.UNCONFIRMED
    assert _outcomes(sink) == {
        0: (settled, None),
        1: (Outcome.FAILED, "packet_too_large"),
        2: (settled, None),
    }
    assert [json.loads(p.payload)["seq"] for p in broker.publishes] == [0, 2]
    assert all(p.size <= 200 for p in broker.publishes)


async def test_a_qos_above_the_brokers_maximum_is_a_clear_error() -> None:
    """A broker whose CONNACK says Maximum QoS 1 refuses a QoS 2 run at its first connect,
    naming the QoS to use."""
    async with FakeBroker(limits=[(MAXIMUM_QOS, 1, 1)]) as broker:
        transport = LeanMqttTransport(
            RecordingSink(), _settings(broker.port, version="5", qos=2), [_client_id()]
        )
        async with transport:
            with pytest.raises(ConnectError, match=r"takes QoS 1 at most .* --qos 1"):
                await transport.connect(0)


async def test_a_disconnect_names_why_the_connection_was_lost() -> None:
    """A broker that sends DISCONNECT with 0x97 (quota exceeded) after two publishes: the
    lost connection is booked with that reason."""
    async with FakeBroker(disconnect_after=(2, 0x97)) as broker:
        sink = RecordingSink()
        transport = LeanMqttTransport(sink, _settings(broker.port, version="5"), [_client_id()])
        async with transport:
            await transport.connect(0)
            transport.send_many([_message(0), _message(1)])
            assert await _until(lambda: ("lost", "quota_exceeded") in sink.reasons, 5.0)


async def test_topic_aliases_send_a_name_once_per_connection() -> None:
    """With --topic-alias and a broker taking 2 aliases: the first message of each topic
    carries its name and an alias, later ones the alias alone; a third topic, past the
    broker's aliases, carries its name every time."""
    topics = ["a/1", "b/2", "a/1", "c/3", "b/2", "c/3"]
    async with FakeBroker(limits=[(TOPIC_ALIAS_MAXIMUM, 2, 2)]) as broker:
        messages = [_message(seq, topic) for seq, topic in enumerate(topics)]
        _, sink = await _publish(broker, messages, topic_alias=True)
    assert all(outcome is Outcome.ACKNOWLEDGED for _, outcome, _ in sink.done)
    seen = [(p.topic, p.alias) for p in broker.publishes]
    assert seen == [("a/1", 1), ("b/2", 2), ("", 1), ("c/3", 0), ("", 2), ("c/3", 0)]


async def test_user_properties_of_a_message_go_out_with_it() -> None:
    """A message's properties (trace context) reach the broker as user properties."""
    message = _message(0)
    message.properties = user_properties([("traceparent", "00-abc-def-01")])
    async with FakeBroker() as broker:
        await _publish(broker, [message])
    assert broker.publishes[0].user == [("traceparent", "00-abc-def-01")]


@pytest.mark.parametrize(
    ("refusal", "answer"),
    [("v3", "answered CONNACK unacceptable protocol version"), ("close", "closed the connection")],
)
async def test_a_broker_that_refuses_mqtt5_is_one_clear_error(refusal: str, answer: str) -> None:
    """A 3.1.1 broker's CONNACK code 1, or a connection closed at MQTT 5's CONNECT: a
    ConnectError naming the broker's answer and --mqtt-version; no silent fallback."""
    async with FakeBroker(v5=refusal) as broker:
        transport = LeanMqttTransport(
            RecordingSink(), _settings(broker.port, version="5"), [_client_id()]
        )
        async with transport:
            with pytest.raises(ConnectError) as error:
                await transport.connect(0)
        assert broker.levels == [5]
    message = str(error.value)
    assert "refused MQTT 5" in message
    assert answer in message
    assert "--mqtt-version 3.1.1" in message


async def test_auto_falls_back_to_311_and_says_so() -> None:
    """Under --mqtt-version auto, a broker that refuses MQTT 5 is asked again at 3.1.1,
    every later connection speaks 3.1.1, and the transport says why."""
    async with FakeBroker(v5="v3") as broker:
        sink = RecordingSink()
        ids = [_client_id(), _client_id()]
        transport = LeanMqttTransport(sink, _settings(broker.port, version="auto"), ids)
        async with transport:
            await transport.connect(0)
            await transport.connect(1)
            transport.send_many([_message(0)])
            assert await _until(lambda: len(sink.done) == 1, 5.0)
        assert broker.levels == [5, 4, 4]
        assert transport.protocol == "3.1.1"
        assert transport.fell_back == "answered CONNACK unacceptable protocol version"


def test_connack_and_acknowledgements_parse_as_mqtt5_says() -> None:
    """A CONNACK's properties become the broker's limits (absent ones their defaults); a
    two-byte PUBACK is a success; a reason string is read."""
    props = bytes([RECEIVE_MAXIMUM, 0, 20, SERVER_KEEP_ALIVE, 0, 30, 0x12, 0, 2]) + b"id"
    limits = parse_connack(bytes([0, 0, len(props)]) + props, 5)
    assert (limits.receive_maximum, limits.server_keep_alive) == (20, 30)
    assert limits.assigned_client_id == "id"
    assert (limits.maximum_packet_size, limits.maximum_qos) == (0, 2)
    assert parse_ack(b"\x00\x07") == (7, 0, None)
    reason = bytes([0x1F, 0, 4]) + b"full"
    assert parse_ack(b"\x00\x07\x97" + bytes([len(reason)]) + reason) == (7, 0x97, "full")
    found, end = read_properties(bytes([0]), 0)
    assert (found, end) == (Properties(), 1)
