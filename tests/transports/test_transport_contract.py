"""One contract that every transport keeps (memory, file, and MQTT against Mosquitto)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from simulator.errors import ClosedError
from simulator.messages import Message, Outcome
from simulator.transports.base import Transport
from simulator.transports.file import FileTransport
from simulator.transports.memory import MemoryTransport
from simulator.transports.mqtt.lean import LeanMqttTransport
from simulator.transports.mqtt.settings import MqttBase, MqttSettings
from tests.conftest import observing


class RecordingSink:
    """Records every result a transport reports."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.done: list[tuple[Message, Outcome, str | None]] = []
        self.events: list[str] = []
        #: every connection event with its reason.
        self.reasons: list[tuple[str, str | None]] = []
        self.retried: list[tuple[Message, str]] = []
        self.timings: list[tuple[int, str, int]] = []

    def message_sent(self, message: Message) -> None:
        self.sent.append(message)

    def message_done(self, message: Message, outcome: Outcome, error: str | None = None) -> None:
        self.done.append((message, outcome, error))

    def messages_sent(self, messages: list[Message]) -> None:
        self.sent.extend(messages)

    def message_retried(self, message: Message, reason: str) -> None:
        self.retried.append((message, reason))

    def messages_done(self, messages: list[Message], outcome: Outcome) -> None:
        for message in messages:
            self.message_done(message, outcome)

    def connection_event(self, event: str, error: str | None = None) -> None:
        self.events.append(event)
        self.reasons.append((event, error))

    def server_timing(self, type_code: int, header: str, size: int) -> None:
        self.timings.append((type_code, header, size))

    def messages_written(self, messages: list[Message]) -> None:
        for message in messages:
            self.message_sent(message)
            self.message_done(message, Outcome.ACKNOWLEDGED)


Factory = Callable[[RecordingSink, Path, str], Transport]
#: this run's own client ids and topics: parallel runs on the shared broker never meet.
RUN = uuid.uuid4().hex[:10]
CLIENT_IDS = [f"barnstorm-contract-{RUN}-{i}" for i in range(4)]
TOPICS = f"bstest/contract-{RUN}"


def _memory(sink: RecordingSink, tmp: Path, broker: str) -> Transport:
    return MemoryTransport(sink)


def _file(sink: RecordingSink, tmp: Path, broker: str) -> Transport:
    return FileTransport(sink, tmp / "out.jsonl")


def _mqtt(sink: RecordingSink, tmp: Path, broker: str) -> Transport:
    return LeanMqttTransport(sink, MqttSettings.from_url(broker, qos=1), CLIENT_IDS)


def _mqtt5(sink: RecordingSink, tmp: Path, broker: str) -> Transport:
    return LeanMqttTransport(sink, MqttSettings.from_url(broker, qos=1, version="5"), CLIENT_IDS)


def _message(i: int, connection: int = 0) -> Message:
    payload = json.dumps({"device_id": f"d{connection}", "seq": i}).encode()
    return Message(connection, 0, connection, "summary", i, f"{TOPICS}/{connection}", payload, None)


@pytest.fixture(
    params=[_memory, _file, _mqtt, _mqtt5], ids=["memory", "file", "mqtt-3.1.1", "mqtt-5"]
)
def factory(request: pytest.FixtureRequest, mosquitto: str) -> Factory:
    return request.param  # type: ignore[no-any-return]


async def test_every_message_gets_exactly_one_outcome(
    factory: Factory, tmp_path: Path, mosquitto: str
) -> None:
    """Sent messages are reported once as sent and once as done, acknowledged, in order,
    and the target holds each exactly once: the memory transport's list, the file's lines,
    or, over MQTT, what an independent paho subscriber received."""
    sink = RecordingSink()
    with observing(f"{TOPICS}/#") as observer:
        async with factory(sink, tmp_path, mosquitto) as transport:
            await transport.connect(0)
            await transport.connect(0)  # idempotent
            assert transport.is_connected(0)
            for i in range(200):
                transport.send(_message(i))
            await transport.drain(10.0)
            assert transport.in_flight == 0
        if isinstance(transport, MqttBase):
            observer.wait_for(200, timeout=10.0)
        received = [payload["seq"] for _, payload in observer.messages]
    assert [m.seq for m in sink.sent] == list(range(200))
    assert sorted(m.seq for m, _, _ in sink.done) == list(range(200))
    assert {outcome for _, outcome, _ in sink.done} == {Outcome.ACKNOWLEDGED}
    assert sink.events.count("up") == 1
    if isinstance(transport, MemoryTransport):
        received = [payload["seq"] for payload in transport.payloads()]
    elif isinstance(transport, FileTransport):
        lines = (tmp_path / "out.jsonl").read_text().splitlines()
        received = [json.loads(line)["payload"]["seq"] for line in lines]
    assert sorted(received) == list(range(200))


async def test_a_closed_transport_says_so(factory: Factory, tmp_path: Path, mosquitto: str) -> None:
    """Sending before opening or after closing, or reopening, raises ClosedError in plain words."""
    sink = RecordingSink()
    transport = factory(sink, tmp_path, mosquitto)
    with pytest.raises(ClosedError, match="not open"):
        transport.send(_message(0))
    async with transport:
        pass
    with pytest.raises(ClosedError, match="closed"):
        transport.send(_message(1))
    with pytest.raises(ClosedError, match="cannot be opened again"):
        async with transport:
            pass


async def test_mqtt_drops_messages_of_a_connection_that_is_not_up(
    tmp_path: Path, mosquitto: str
) -> None:
    """A message for a connection that is down is counted as dropped, never silently lost."""
    sink = RecordingSink()
    async with _mqtt(sink, tmp_path, mosquitto) as transport:
        transport.send(_message(0, connection=3))
    assert [(outcome, error) for _, outcome, error in sink.done] == [
        (Outcome.DROPPED, "not_connected")
    ]
