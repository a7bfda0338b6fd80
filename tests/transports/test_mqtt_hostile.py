"""barnstorm's MQTT client against brokers and networks that misbehave: a link cut at a
PUBREL, a broker gone silent on a busy link, one that stops reading, one that closes the
connection over a message, a smaller in-flight quota, and a reconnect racing a connect.
Delivery is judged by a paho subscriber on a real Mosquitto wherever it is claimed."""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.backend.broker import free_port
from simulator.errors import AuthError, ConnectError
from simulator.messages import Message, Outcome
from simulator.metrics.metrics import Metrics
from simulator.runner.bridge import ResultStream
from simulator.transports.mqtt import lean
from simulator.transports.mqtt.lean import LeanMqttTransport
from simulator.transports.mqtt.settings import MqttSettings
from tests.conftest import MOSQUITTO_PORT, observing, port_open
from tests.transports.hostile import PUBREL, CuttingProxy, FakeBroker
from tests.transports.test_transport_contract import RecordingSink


def _message(seq: int, topic: str, payload: bytes | None = None) -> Message:
    body = payload or json.dumps({"device_id": "d0", "seq": seq}).encode()
    return Message(0, 0, 0, "summary", seq, topic, body, None)


def _settings(port: int, **options: object) -> MqttSettings:
    defaults: dict[str, object] = {
        "connect_timeout": 2.0,
        "reconnect_base": 0.05,
        "reconnect_cap": 0.2,
    }
    return MqttSettings(host="127.0.0.1", port=port, **{**defaults, **options})  # type: ignore[arg-type]


def _client_id() -> str:
    return f"barnstorm-hostile-{uuid.uuid4().hex[:10]}"


async def _until(condition: object, timeout: float) -> bool:
    """Wait until ``condition()`` holds (True) or ``timeout`` seconds pass (False)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def _outcomes(sink: RecordingSink) -> dict[int, tuple[Outcome, str | None]]:
    return {message.seq: (outcome, error) for message, outcome, error in sink.done}


async def test_a_link_cut_at_pubrel_never_counts_a_message_nobody_received(
    mosquitto: str,
) -> None:
    """QoS 2 through a proxy that cuts the link at the first PUBREL: after the reconnect
    (a clean session) every message is acknowledged, and paho on the broker received
    every acknowledged one. Sending the old session's PUBREL again would have Mosquitto
    answer PUBCOMP for an id it never saw, and count a message nobody received."""
    topic = f"bstest/hostile-pubrel/{uuid.uuid4().hex[:10]}"
    with observing(f"{topic}/#") as observer:
        async with CuttingProxy(MOSQUITTO_PORT, cut_at=PUBREL) as proxy:
            sink = RecordingSink()
            settings = _settings(proxy.port, qos=2)
            async with LeanMqttTransport(sink, settings, [_client_id()]) as transport:
                await transport.connect(0)
                transport.send_many([_message(i, f"{topic}/d0") for i in range(40)])
                assert await _until(lambda: transport.in_flight == 0, 15.0)
            assert proxy.cuts == 1
        acknowledged = {m.seq for m, o, _ in sink.done if o is Outcome.ACKNOWLEDGED}
        assert acknowledged == set(range(40))
        observer.wait_for(40, timeout=10.0)
        received = {payload["seq"] for _, payload in observer.messages}
    assert acknowledged <= received


async def test_a_broker_gone_silent_on_a_busy_link_is_noticed() -> None:
    """A broker that keeps the socket open but stops answering after three messages, while
    the device publishes at QoS 1 every 0.2 s (so the link is never idle): the link is
    pinged anyway and declared lost within one and a half keepalives (2 s here)."""
    async with FakeBroker(silent_after=3) as broker:
        sink = RecordingSink()
        settings = _settings(broker.port, qos=1, keepalive=2)
        async with LeanMqttTransport(sink, settings, [_client_id()]) as transport:
            await transport.connect(0)
            loop = asyncio.get_running_loop()
            started = loop.time()
            seq = 0
            while "lost" not in sink.events and loop.time() - started < 8.0:
                transport.send(_message(seq, "t/d0"))
                seq += 1
                await asyncio.sleep(0.2)
            noticed = loop.time() - started
    assert "lost" in sink.events, f"a silent broker went unnoticed for {noticed:.1f} s"
    assert noticed < 4.5
    assert broker.pings >= 1


async def test_a_broker_that_stops_reading_costs_bounded_memory() -> None:
    """A broker that accepts the connection and never reads again, with a device writing
    half a megabyte a tick at QoS 0: barnstorm's own buffer for the link stays within its
    bound, the overflow is dropped as send_buffer_full on the books, and every message is
    settled (unconfirmed means written, not parked in barnstorm's memory)."""
    payload = b"x" * 1000
    async with FakeBroker(stop_reading=True) as broker:
        sink = RecordingSink()
        async with LeanMqttTransport(sink, _settings(broker.port, qos=0), [_client_id()]) as t:
            await t.connect(0)
            link = t._links[0]
            largest = 0
            for tick in range(200):
                t.send_many([_message(tick * 500 + i, "t/d0", payload) for i in range(500)])
                await asyncio.sleep(0)
                assert link.transport is not None
                largest = max(largest, link.transport.get_write_buffer_size())
    outcomes = [(o, e) for _, o, e in sink.done]
    assert len(outcomes) == len(sink.sent) == 100_000
    dropped = outcomes.count((Outcome.DROPPED, "send_buffer_full"))
    assert dropped > 50_000
    assert outcomes.count((Outcome.UNCONFIRMED, None)) + dropped == 100_000
    assert largest <= lean.LINK_BUFFER + 500 * (len(payload) + 10)


async def test_a_message_the_broker_closes_the_connection_over_is_rejected() -> None:
    """A broker that closes the connection whenever it reads one poisoned message: the
    message is first in line at two losses in a row, so it fails as "rejected" and is not
    sent again; the messages around it are acknowledged, the link ends up connected after
    three connections, and the backoff did not reset on connections that did not last."""
    async with FakeBroker(poison=b"poison") as broker:
        sink = RecordingSink()
        async with LeanMqttTransport(sink, _settings(broker.port, qos=1), [_client_id()]) as t:
            await t.connect(0)
            t.send_many([_message(0, "t/d0"), _message(1, "t/d0", b"poison"), _message(2, "t/d0")])
            assert await _until(lambda: t.in_flight == 0 and t.is_connected(0), 10.0)
            await asyncio.sleep(0.3)  # a loop would show as more connections by now
            attempts = t._links[0].attempt
    assert _outcomes(sink) == {
        0: (Outcome.ACKNOWLEDGED, None),
        1: (Outcome.FAILED, "rejected"),
        2: (Outcome.ACKNOWLEDGED, None),
    }
    assert broker.connections == 3
    assert sink.events == ["up", "lost", "reconnected", "lost", "reconnected"]
    assert attempts == 2


class _Longest(random.Random):
    """Backoff at its longest: the whole [0, cap] range, every time."""

    def uniform(self, a: float, b: float) -> float:
        return b


async def test_a_connect_cancels_the_links_own_reconnect() -> None:
    """A link lost on its own schedules a reconnect; the engine's connect() then brings it
    back at once. The scheduled reconnect must not run later and take down the healthy
    connection: one connection open, events up/lost/reconnected and nothing more."""
    async with FakeBroker() as broker:
        sink = RecordingSink()
        settings = _settings(broker.port, qos=1, reconnect_base=0.5, reconnect_cap=0.5)
        async with LeanMqttTransport(sink, settings, [_client_id()]) as transport:
            transport._rng = _Longest()
            await transport.connect(0)
            link = transport._links[0]
            assert link.transport is not None
            link.transport.abort()
            assert await _until(lambda: "lost" in sink.events, 2.0)
            await transport.connect(0)
            await asyncio.sleep(1.0)  # the reconnect was due after 0.5 s
            assert transport.is_connected(0)
            assert broker.open_connections == 1
    assert broker.connections == 2
    assert sink.events == ["up", "lost", "reconnected"]


async def test_a_qos1_window_keeps_what_is_in_flight_bounded() -> None:
    """With --max-inflight 10 and a broker that never acknowledges, ten messages go on the
    wire and ninety wait on the device; at the stop all hundred fail, none is lost."""
    async with FakeBroker(silent_after=0) as broker:
        sink = RecordingSink()
        settings = _settings(broker.port, qos=1, max_inflight=10)
        async with LeanMqttTransport(sink, settings, [_client_id()]) as transport:
            await transport.connect(0)
            transport.send_many([_message(i, "t/d0") for i in range(100)])
            assert await _until(lambda: len(broker.publishes) >= 10, 2.0)
            await asyncio.sleep(0.2)
            assert len(transport._links[0].in_flight) == 10
            assert transport.in_flight == 100
    assert len(broker.publishes) == 10
    assert sorted(_outcomes(sink)) == list(range(100))
    assert {o for _, o, _ in sink.done} == {Outcome.FAILED}


class _QuotaBroker:
    """A Mosquitto of the test's own with an in-flight quota of 5."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        config = folder / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\nlog_dest none\n"
            "max_inflight_messages 5\n" + ("user root\n" if os.geteuid() == 0 else "")
        )
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = subprocess.Popen([binary, "-c", str(config)])
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", self.port):
            assert time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def quota_broker(tmp_path: Path) -> Iterator[_QuotaBroker]:
    broker = _QuotaBroker(tmp_path)
    yield broker
    broker.stop()


@pytest.mark.slow
async def test_max_inflight_meets_a_brokers_smaller_quota(quota_broker: _QuotaBroker) -> None:
    """Mosquitto with max_inflight_messages 5 answers PUBREC beyond its quota and drops the
    message. With --max-inflight 5 every one of 200 QoS 2 messages is acknowledged and
    paho received every one."""
    topic = f"bstest/hostile-quota/{uuid.uuid4().hex[:10]}"
    with observing(f"{topic}/#", port=quota_broker.port) as observer:
        sink = RecordingSink()
        settings = _settings(quota_broker.port, qos=2, max_inflight=5)
        async with LeanMqttTransport(sink, settings, [_client_id()]) as transport:
            await transport.connect(0)
            transport.send_many([_message(i, f"{topic}/d0") for i in range(200)])
            assert await _until(lambda: transport.in_flight == 0, 15.0)
        observer.wait_for(200, timeout=10.0)
        received = {payload["seq"] for _, payload in observer.messages}
    assert {m.seq for m, o, _ in sink.done if o is Outcome.ACKNOWLEDGED} == set(range(200))
    assert received == set(range(200))


@pytest.mark.parametrize(
    ("code", "error", "reason"),
    [
        (1, ConnectError, "unacceptable protocol version"),
        (2, ConnectError, "client identifier rejected"),
        (3, ConnectError, "server unavailable"),
        (4, AuthError, "bad user name or password"),
        (5, AuthError, "not authorised"),
    ],
)
async def test_each_connack_refusal_is_named(
    code: int, error: type[Exception], reason: str
) -> None:
    """A broker answering CONNACK with return code 1 to 5: connect() raises the matching
    error naming the broker's reason, and the refusal is counted as a failed connection."""
    async with FakeBroker(connack_code=code) as broker:
        sink = RecordingSink()
        async with LeanMqttTransport(sink, _settings(broker.port), [_client_id()]) as transport:
            with pytest.raises(error, match=reason):
                await transport.connect(0)
            assert not transport.is_connected(0)
    assert sink.events == ["failed"]


@pytest.mark.parametrize("qos", [1, 2])
async def test_answers_split_into_single_bytes_settle_every_message(qos: int) -> None:
    """A broker that writes every CONNACK, PUBACK, PUBREC and PUBCOMP one byte at a time:
    the client reassembles them and settles each of 200 messages exactly once."""
    async with FakeBroker(split=True) as broker:
        sink = RecordingSink()
        settings = _settings(broker.port, qos=qos)
        async with LeanMqttTransport(sink, settings, [_client_id()]) as transport:
            await transport.connect(0)
            transport.send_many([_message(i, "t/d0") for i in range(200)])
            assert await _until(lambda: transport.in_flight == 0, 10.0)
    assert sorted(m.seq for m, _, _ in sink.done) == list(range(200))
    assert {o for _, o, _ in sink.done} == {Outcome.ACKNOWLEDGED}
    assert len(broker.publishes) == 200


async def test_what_a_devices_own_outage_cuts_off_is_failed_as_cut_offline() -> None:
    """A scenario takes a device offline while five messages await their PUBACK: each fails
    once, as cut_offline (in doubt: never delivered), and the Locust bridge counts them as
    held on the device, not as results, so they are no failure of the target."""
    async with FakeBroker(silent_after=0) as broker:
        sink = RecordingSink()
        async with LeanMqttTransport(sink, _settings(broker.port, qos=1), [_client_id()]) as t:
            await t.connect(0)
            t.send_many([_message(i, "t/d0") for i in range(5)])
            assert await _until(lambda: len(broker.publishes) == 5, 2.0)
            await t.disconnect(0)
            assert t.in_flight == 0
    assert sorted(_outcomes(sink).items()) == [
        (i, (Outcome.FAILED, "cut_offline")) for i in range(5)
    ]
    assert len(sink.done) == 5
    metrics = Metrics(("monitor",))
    out = io.BytesIO()
    stream = ResultStream(metrics, "mqtt", out)
    for message, outcome, error in sink.done:
        stream.observe(message, outcome, error, None)
    stream.observe(_message(9, "t/d0"), Outcome.FAILED, "timeout", None)
    stream.flush()
    line = json.loads(out.getvalue())
    assert line["held"] == {"cut_offline": 5}
    assert line["results"]["error"] == ["timeout"]
