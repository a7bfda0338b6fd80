"""barnstorm's own MQTT client beyond the shared transport contract: QoS 2, replay into a
clean session, keepalive noticing a dead link, reconnect, and source addresses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulator.messages import Message, Outcome
from simulator.runner.target import mqtt_at_speed
from simulator.transports.faultproxy import FaultProxy
from simulator.transports.mqtt.lean import LeanMqttTransport
from simulator.transports.mqtt.link import Link
from simulator.transports.mqtt.packets import SHORT, fixed_header, publish_packet, short_headers
from simulator.transports.mqtt.settings import READ_ROUND, MqttSettings
from tests.transports.hostile import FakeBroker
from tests.transports.test_transport_contract import RecordingSink


def _message(seq: int, topic: str, connection: int = 0) -> Message:
    payload = json.dumps({"device_id": f"d{connection}", "seq": seq}).encode()
    return Message(connection, 0, connection, "summary", seq, topic, payload, None)


class _Observer:
    """An independent paho subscriber that records the seq of every message it gets."""

    def __init__(self, host: str, port: int, topic: str) -> None:
        self.seen: set[int] = set()
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"obs-{uuid.uuid4().hex}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect(host, port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        assert subscribed.wait(10)

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        with self.lock:
            self.seen.add(json.loads(message.payload)["seq"])

    async def wait_for(self, count: int, timeout: float = 10.0) -> set[int]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            with self.lock:
                if len(self.seen) >= count:
                    break
            await asyncio.sleep(0.05)
        self.client.disconnect()
        self.client.loop_stop()
        with self.lock:
            return set(self.seen)


async def test_qos2_messages_are_settled_by_pubcomp(mosquitto: str) -> None:
    """At QoS 2 every message goes PUBLISH, PUBREC, PUBREL, PUBCOMP and ends acknowledged;
    an independent subscriber receives each one."""
    topic = f"bstest/lean-qos2/{uuid.uuid4().hex[:8]}"
    url = urlsplit(mosquitto)
    observer = _Observer(url.hostname or "127.0.0.1", url.port or 1883, topic)
    sink = RecordingSink()
    settings = MqttSettings.from_url(mosquitto, qos=2)
    async with LeanMqttTransport(sink, settings, ["barnstorm-lean-qos2"]) as transport:
        await transport.connect(0)
        transport.send_many([_message(i, topic) for i in range(300)])
        await transport.drain(10.0)
        assert transport.in_flight == 0
    assert sorted(m.seq for m, o, _ in sink.done if o is Outcome.ACKNOWLEDGED) == list(range(300))
    assert await observer.wait_for(300) == set(range(300))


def test_replay_publishes_again_as_new_messages_of_the_clean_session() -> None:
    """After a reconnect (a clean session, which knows nothing of the old one) a link
    publishes what was in flight again as new messages: new packet ids from 1, DUP 0, the
    same payloads in the same order, and no PUBREL, not even for a QoS 2 message whose
    PUBREC had come (a PUBREL for an id the new session never saw would be answered
    PUBCOMP by Mosquitto and so settle a message nobody received)."""

    class Wire:
        def __init__(self) -> None:
            self.data = b""

        def write(self, data: bytes) -> None:
            self.data += data

    link = Link(0, "c", None)
    wire = Wire()
    link.transport = wire  # type: ignore[assignment]
    link.in_flight = {7: _message(1, "t/a"), 8: _message(2, "t/a")}  # 8 had its PUBREC
    link.replay(qos=2, aliases=False)
    first = publish_packet(b"t/a", _message(1, "t/a").payload, 2, 1, False)
    second = publish_packet(b"t/a", _message(2, "t/a").payload, 2, 2, False)
    assert first[0] == 0x34  # PUBLISH, QoS 2, DUP clear
    assert wire.data == first + second
    assert [m.seq for m in link.in_flight.values()] == [1, 2]
    assert list(link.in_flight) == [1, 2]


def test_links_sharing_one_read_buffer_each_keep_their_own_unfinished_packet() -> None:
    """Every link of a transport reads into one shared buffer: a PUBACK split across two
    reads of one link completes, though another link's read filled the buffer in between,
    and each link settles exactly its own packet ids."""
    shared = memoryview(bytearray(64))
    one, two = Link(0, "a", None, shared), Link(1, "b", None, shared)
    one.in_flight = {1: _message(1, "t/a"), 2: _message(2, "t/a")}
    two.in_flight = {1: _message(1, "t/b", 1), 3: _message(3, "t/b", 1)}

    def read(link: Link, data: bytes) -> None:
        buffer = link.get_buffer(-1)
        buffer[: len(data)] = data
        link.buffer_updated(len(data))

    read(one, bytes([0x40, 0x02, 0x00, 0x01, 0x40, 0x02]))  # PUBACK 1, half of PUBACK 2
    assert list(one.in_flight) == [2]
    read(two, bytes([0x40, 0x02, 0x00, 0x03, 0x40, 0x02, 0x00, 0x01]))  # overwrites it all
    assert two.in_flight == {}
    read(one, bytes([0x00, 0x02]))  # the rest of PUBACK 2
    assert one.in_flight == {}


async def test_a_dead_link_is_noticed_by_keepalive_and_replayed_after_reconnect(
    mosquitto: str,
) -> None:
    """Behind a blackhole nothing answers: the keepalive notices the silent link, the
    link reconnects with backoff once the network is back, and the messages that were in
    flight are sent again and acknowledged; the subscriber has every one of them."""
    topic = f"bstest/lean-dead/{uuid.uuid4().hex[:8]}"
    url = urlsplit(mosquitto)
    host, port = url.hostname or "127.0.0.1", url.port or 1883
    observer = _Observer(host, port, topic)
    sink = RecordingSink()
    async with FaultProxy(host, port) as proxy:
        settings = MqttSettings(
            host="127.0.0.1",
            port=proxy.port,
            qos=1,
            keepalive=2,
            connect_timeout=1.0,
            reconnect_base=0.1,
            reconnect_cap=0.5,
        )
        async with LeanMqttTransport(sink, settings, ["barnstorm-lean-dead"]) as transport:
            await transport.connect(0)
            proxy.apply("blackhole")
            transport.send_many([_message(i, topic) for i in range(20)])
            assert transport.in_flight == 20
            for _ in range(100):  # the keepalive gives up within about two periods
                if "lost" in sink.events:
                    break
                await asyncio.sleep(0.1)
            assert "lost" in sink.events
            assert not transport.is_connected(0)
            proxy.clear()
            for _ in range(100):
                if transport.is_connected(0):
                    break
                await asyncio.sleep(0.1)
            await transport.drain(5.0)
            assert transport.in_flight == 0
    assert sink.events[:2] == ["up", "lost"]
    assert "reconnected" in sink.events
    assert sorted(m.seq for m, o, _ in sink.done if o is Outcome.ACKNOWLEDGED) == list(range(20))
    assert await observer.wait_for(20) == set(range(20))


async def test_connections_leave_from_the_given_source_addresses(mosquitto: str) -> None:
    """With several source addresses, connections take them in turn (so one machine can
    open more connections to one broker port than one address has ports)."""
    sink = RecordingSink()
    settings = MqttSettings.from_url(mosquitto, source_addresses=("127.0.0.2", "127.0.0.3"))
    ids = [f"barnstorm-lean-src-{i}-{uuid.uuid4().hex[:6]}" for i in range(4)]
    async with LeanMqttTransport(sink, settings, ids) as transport:
        for connection in range(4):
            await transport.connect(connection)
        sources = [
            transport._links[c].transport.get_extra_info("sockname")[0]  # type: ignore[union-attr]
            for c in range(4)
        ]
    assert sources == ["127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.3"]


async def test_a_connection_dropped_and_reopened_at_once_carries_on(mosquitto: str) -> None:
    """A scenario's outage closes a connection and may reopen it in the same instant: the
    new socket is the link's only one (the old one's end does not take it down), and
    messages sent on it are acknowledged."""
    topic = f"bstest/lean-reopen/{uuid.uuid4().hex[:8]}"
    sink = RecordingSink()
    settings = MqttSettings.from_url(mosquitto, qos=1)
    async with LeanMqttTransport(sink, settings, [f"lean-reopen-{topic[-8:]}"]) as transport:
        await transport.connect(0)
        for round_ in range(3):
            await transport.disconnect(0)
            await transport.connect(0)
            transport.send_many([_message(round_ * 10 + i, topic) for i in range(10)])
            await transport.drain(5.0)
        await asyncio.sleep(0.2)  # any late end of an old socket would show by now
        assert transport.is_connected(0)
        assert transport.in_flight == 0
    assert sink.events == ["up", *(["lost", "reconnected"] * 3)]
    acked = sorted(m.seq for m, o, _ in sink.done if o is Outcome.ACKNOWLEDGED)
    assert acked == list(range(30))


async def test_qos2_messages_beyond_the_outbox_are_dropped_on_the_books(mosquitto: str) -> None:
    """Behind a blackhole no PUBCOMP comes back: 20 QoS 2 messages fly, the outbox holds
    the next ones up to its bound, and the rest are dropped as outbox_full, each on the
    books; at the stop the flying and waiting ones are failed, so nothing is missing."""
    from simulator.transports.mqtt import lean as mqttlean

    topic = f"bstest/lean-outbox/{uuid.uuid4().hex[:8]}"
    url = urlsplit(mosquitto)
    sink = RecordingSink()
    original = mqttlean.OUTBOX
    mqttlean.OUTBOX = 30
    try:
        async with FaultProxy(url.hostname or "127.0.0.1", url.port or 1883) as proxy:
            settings = MqttSettings(host="127.0.0.1", port=proxy.port, qos=2)
            async with LeanMqttTransport(sink, settings, ["barnstorm-lean-outbox"]) as transport:
                await transport.connect(0)
                proxy.apply("blackhole")
                transport.send_many([_message(i, topic) for i in range(100)])
                assert transport.in_flight == 20 + 30
    finally:
        mqttlean.OUTBOX = original
    outcomes = [(o, e) for _, o, e in sink.done]
    assert outcomes.count((Outcome.DROPPED, "outbox_full")) == 50
    assert outcomes.count((Outcome.FAILED, "in_flight_at_stop")) == 50
    assert len(sink.sent) == 100


def _decoded_length(header: bytes) -> tuple[int, int]:
    """(remaining length, header size) of a fixed header, by the MQTT 3.1.1 spec (2.2.3)."""
    value, multiplier, at = 0, 1, 1
    while True:
        byte = header[at]
        value += (byte & 0x7F) * multiplier
        multiplier *= 128
        at += 1
        if not byte & 0x80:
            return value, at


def test_publish_headers_from_the_table_encode_every_remaining_length() -> None:
    """Each fixed header the lean client looks up (every remaining length below 16,384 at
    QoS 0 and 1) starts with the PUBLISH byte and decodes, per the spec, to its length in
    the fewest bytes; longer packets build theirs and decode too."""
    for first in (0x30, 0x32):
        table = short_headers(first)
        assert len(table) == SHORT
        for size, header in enumerate(table):
            assert header[0] == first
            assert _decoded_length(header) == (size, len(header))
            assert len(header) == (2 if size < 128 else 3)
    for size in (SHORT, 70_000, 2_097_151, 2_097_152):
        header = fixed_header(0x30, size)
        assert _decoded_length(header) == (size, len(header))


async def test_acknowledgements_read_in_the_last_turn_are_settled_at_close(mosquitto: str) -> None:
    """A PUBACK is settled at the end of the loop's turn that read it, in flight until then;
    a transport closed within that turn books it as acknowledged, once, and what is still
    unanswered as failed at the stop: every message ends with exactly one outcome."""
    topic = f"bstest/lean-last-turn/{uuid.uuid4().hex[:8]}"
    sink = RecordingSink()
    settings = MqttSettings.from_url(mosquitto, qos=1)
    client_id = f"barnstorm-lean-last-turn-{uuid.uuid4().hex[:8]}"
    transport = LeanMqttTransport(sink, settings, [client_id])
    async with transport:
        await transport.connect(0)
        transport.send_many([_message(i, topic) for i in range(3)])
        link = transport._links[0]
        # The broker's PUBACK of packet 1, read before its own can arrive; close at once.
        link.data_received(bytes([0x40, 0x02, 0x00, 0x01]))
        assert transport.in_flight == 3  # read, not yet settled: still in flight
    outcomes = {m.seq: (o, e) for m, o, e in sink.done}
    assert len(sink.done) == 3
    assert outcomes[0] == (Outcome.ACKNOWLEDGED, None)
    assert outcomes[1] == outcomes[2] == (Outcome.FAILED, "in_flight_at_stop")
    await asyncio.sleep(0.05)  # the settling scheduled in that turn finds nothing more
    assert len(sink.done) == 3


class _TimedSink(RecordingSink):
    """Records, beside every outcome, the monotonic instant barnstorm settled it."""

    def __init__(self) -> None:
        super().__init__()
        self.settled_at: dict[bytes, float] = {}

    def messages_done(self, messages: list[Message], outcome: Outcome) -> None:
        now = time.monotonic()
        for message in messages:
            self.settled_at[message.payload] = now
        super().messages_done(messages, outcome)


@contextlib.contextmanager
def _broker_in_a_thread(**options: Any) -> Iterator[FakeBroker]:
    """A fake broker on an event loop of its own thread: it keeps answering while the
    transport's loop is held."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    broker = FakeBroker(**options)
    asyncio.run_coroutine_threadsafe(broker.start(), loop).result(5)
    try:
        yield broker
    finally:
        asyncio.run_coroutine_threadsafe(broker.__aexit__(None, None, None), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


async def test_acknowledgements_trickling_in_are_read_in_rounds_only_when_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broker that is behind sends one PUBACK every 2 ms per connection. Read as they come
    (real time), that is a read per PUBACK; with ``read_round`` (speed max) the waiting
    transport reads them in rounds, a tenth as many reads or fewer, and settles each
    acknowledgement at most one round (plus scheduling slack) after the broker sent it,
    not behind a second round.
    Either way every message reaches the broker and is acknowledged once."""
    reads = [0]
    original = Link.buffer_updated

    def counted(link: Link, nbytes: int) -> None:
        reads[0] += 1
        original(link, nbytes)

    monkeypatch.setattr(Link, "buffer_updated", counted)
    run = uuid.uuid4().hex[:8]

    async def publish(read_round: float) -> tuple[int, float]:
        """(reads, the latest settling after its PUBACK went out) of 200 messages."""
        with _broker_in_a_thread(ack_gap=0.002) as broker:
            sink = _TimedSink()
            settings = MqttSettings("127.0.0.1", broker.port, qos=1, read_round=read_round)
            ids = [f"barnstorm-rounds-{run}-{read_round}-{i}" for i in range(2)]
            transport = LeanMqttTransport(sink, settings, ids)
            async with transport:
                await asyncio.gather(transport.connect(0), transport.connect(1))
                reads[0] = 0
                messages = [_message(i, f"bstest/rounds/{run}", i % 2) for i in range(200)]
                transport.send_many(messages)
                await transport.drain(10)
                count = reads[0]
            assert len(broker.acked_at) == 200  # the broker's own record
            assert [o for _, o, _ in sink.done] == [Outcome.ACKNOWLEDGED] * 200
            late = max(sink.settled_at[p] - t for p, t in broker.acked_at.items())
            return count, late

    eager, eager_late = await publish(0.0)
    rounds, rounds_late = await publish(READ_ROUND)
    assert eager >= 100, eager  # about one read per PUBACK
    assert rounds <= eager / 10, (rounds, eager)
    assert 0 <= eager_late < 0.1
    assert 0 <= rounds_late < READ_ROUND + 0.05


def test_only_a_run_at_speed_max_reads_acknowledgements_in_rounds() -> None:
    """The run's MQTT settings ask for read rounds at --speed max (None) only: in real
    time, however fast, a latency is never held back by a round."""
    settings = MqttSettings("127.0.0.1", 1883)
    assert mqtt_at_speed(settings, None).read_round == READ_ROUND > 0
    for speed in (1.0, 60.0, 7680.0):
        assert mqtt_at_speed(settings, speed).read_round == 0
