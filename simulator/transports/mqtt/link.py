"""One connection of barnstorm's MQTT client: its socket, the broker's answers read in bulk,
its packets in flight and the window they keep, over MQTT 3.1.1 or 5.

The transport (:mod:`.lean`) opens links, feeds them the tick's messages and settles what
they report; a link parses what its broker sends (CONNACK, PUBACK, PUBREC, PUBCOMP,
PINGRESP and, over MQTT 5, reason codes and a DISCONNECT with its reason) and keeps the
state that belongs to one connection: packet ids in flight, messages waiting behind the
window, the broker's limits from its CONNACK, and topic aliases.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
from typing import TYPE_CHECKING, Protocol

from simulator.messages import Message
from simulator.transports.mqtt.packets import (
    MAX_PACKET_ID,
    NO_PROPERTIES,
    publish_packet,
    pubrel_packet,
)
from simulator.transports.mqtt.settings import ClosedBeforeConnack
from simulator.transports.mqtt.v5 import (
    TOPIC_ALIAS,
    Connack,
    MalformedPacket,
    parse_ack,
    parse_disconnect,
    reason_name,
    varint,
)

if TYPE_CHECKING:
    from simulator.fleet.credentials import Credential
    from simulator.transports.mqtt.settings import MqttSettings


class Wire(Protocol):
    """What a link tells the transport that owns its connections (the transport,
    :class:`.lean.LeanMqttTransport`, is this; the link knows it only by these)."""

    settings: MqttSettings
    #: links whose sockets push back: the transport stops feeding them meanwhile.
    paused: set[Link]

    def settled(self, messages: list[Message]) -> None: ...

    def refused(self, refused: list[tuple[Message, str]]) -> None: ...

    def lost(self, link: Link) -> None: ...


_PUBACK, _PUBREC, _PUBCOMP, _CONNACK, _DISCONNECT = 4, 5, 7, 2, 14
#: bytes one read of a link's socket takes at most (more wait for the next read).
READ_BUFFER = 64 * 1024


class Link(asyncio.BufferedProtocol):
    """One device connection: its socket, its packets in flight, its reconnect state.

    It reads into a buffer it shares with every link of its transport (a read is parsed
    at once, and what a packet left incomplete is kept per link): asyncio reads a plain
    protocol's socket with ``recv(256 KiB)``, which allocates and frees that much at every
    read of the few PUBACKs a read brings (about 3% of the CPU of a run at QoS 1)."""

    __slots__ = (
        "aliases",
        "attempt",
        "client_id",
        "closing",
        "connack",
        "credential",
        "farewell",
        "heard",
        "in_flight",
        "level",
        "limits",
        "next_id",
        "owner",
        "paused",
        "pending",
        "pinged",
        "reconnecting",
        "refused",
        "rx",
        "suspect",
        "topics",
        "transport",
        "up",
        "up_since",
        "view",
        "waiting",
        "window",
        "wire",
    )

    def __init__(
        self,
        owner: int,
        client_id: str,
        credential: Credential | None,
        view: memoryview | None = None,
    ) -> None:
        self.owner = owner
        self.view = view if view is not None else memoryview(bytearray(READ_BUFFER))
        self.client_id = client_id
        self.credential = credential
        self.transport: asyncio.Transport | None = None
        self.wire: Wire | None = None
        self.in_flight: dict[int, Message] = {}
        self.next_id = 0
        self.rx = b""
        self.heard = False  # something came from the broker since the last housekeeping round
        self.pinged = False
        self.connack: asyncio.Future[bytes] | None = None
        self.up = False
        self.closing = False
        self.paused = False
        self.attempt = 0
        self.up_since = 0.0
        #: the message first in line at the last loss.
        self.suspect: Message | None = None
        self.reconnecting: asyncio.Task[None] | None = None
        self.pending: list[bytes] = []  # packets built this tick, written together
        self.topics: dict[str, bytes] = {}
        self.waiting: collections.deque[Message] | None = None  # beyond the window
        #: the protocol level of this connection: 4 (MQTT 3.1.1) or 5.
        self.level = 4
        #: QoS 1/2 messages in flight at most: the transport's window, or the broker's
        #: Receive Maximum over MQTT 5 if smaller.
        self.window = MAX_PACKET_ID
        #: what the broker allows (its CONNACK's properties over MQTT 5).
        self.limits = Connack(0)
        #: topic -> alias, over MQTT 5 with topic aliases on (cleared with each connection).
        self.aliases: dict[str, int] = {}
        #: messages the broker refused in the read being parsed, with the reason's name.
        self.refused: list[tuple[Message, str]] = []
        #: the reason of the broker's DISCONNECT (MQTT 5), until the connection is lost.
        self.farewell: str | None = None

    # asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.rx = b""
        self.farewell = None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Nagle would hold back small packets (and the broker's PUBACKs: DESIGN.md).
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self.view[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        self.pinged = False
        self.heard = True
        buffer = self.rx + data if self.rx else data
        end = len(buffer)
        at = 0
        acked: list[Message] = []
        in_flight = self.in_flight
        while end - at >= 2:
            first = buffer[at]
            # PUBACK, the packet that comes by thousands: four bytes when it is a success
            # (always over 3.1.1; over MQTT 5 a broker leaves a success's reason code out).
            if first == 0x40 and buffer[at + 1] == 2 and end - at >= 4:
                message = in_flight.pop((buffer[at + 2] << 8) | buffer[at + 3], None)
                if message is not None:
                    acked.append(message)
                at += 4
                continue
            # Over MQTT 5, a success with a reason code and no properties: 0x10 "no
            # matching subscribers" comes by thousands from a broker nobody listens to.
            if first == 0x40 and buffer[at + 1] == 3 and end - at >= 5 and buffer[at + 4] < 0x80:
                message = in_flight.pop((buffer[at + 2] << 8) | buffer[at + 3], None)
                if message is not None:
                    acked.append(message)
                at += 5
                continue
            kind = first >> 4
            size = buffer[at + 1]
            head = 2
            if size & 0x80:  # long remaining length: rare in what a broker sends a publisher
                size, shift = size & 0x7F, 7
                while True:
                    if at + head >= end:
                        end = at  # incomplete: keep the rest for the next read
                        break
                    byte = buffer[at + head]
                    size |= (byte & 0x7F) << shift
                    head += 1
                    shift += 7
                    if not byte & 0x80:
                        break
            if end - at < head + size:
                break
            start = at + head
            try:
                self._packet(kind, buffer[start : start + size], acked)
            except MalformedPacket:
                if self.transport is not None:
                    self.farewell = "malformed_packet"
                    self.transport.abort()
                return
            at = start + size
        self.rx = buffer[at:] if at < len(buffer) else b""
        if self.waiting:
            self.admit()  # into the room the acknowledgements made
        self.flush()  # PUBRELs and admitted messages, in one write
        wire = self.wire
        if wire is not None:
            if acked:
                wire.settled(acked)
            if self.refused:
                refused, self.refused = self.refused, []
                wire.refused(refused)

    def _packet(self, kind: int, body: bytes, acked: list[Message]) -> None:
        """One packet other than a four-byte PUBACK."""
        if kind in (_PUBACK, _PUBCOMP):
            packet_id, code = self._ack(body)
            message = self.in_flight.pop(packet_id, None)
            if message is None:
                return
            if code >= 0x80:
                self.refused.append((message, reason_name(code)))
            else:
                acked.append(message)
        elif kind == _PUBREC:
            packet_id, code = self._ack(body)
            if code >= 0x80:  # refused: the exchange ends here, no PUBREL
                message = self.in_flight.pop(packet_id, None)
                if message is not None:
                    self.refused.append((message, reason_name(code)))
            elif packet_id in self.in_flight and self.transport is not None:
                self.pending.append(pubrel_packet(packet_id))
        elif kind == _CONNACK:
            if self.connack is not None and not self.connack.done():
                self.connack.set_result(body)
        elif kind == _DISCONNECT and self.level >= 5:
            code, _ = parse_disconnect(body)
            self.farewell = reason_name(code)

    def _ack(self, body: bytes) -> tuple[int, int]:
        """(packet id, reason code) of an acknowledgement (3.1.1: always a success)."""
        if self.level < 5:
            if len(body) < 2:
                raise MalformedPacket("acknowledgement shorter than its packet id")
            return int.from_bytes(body[:2], "big"), 0
        packet_id, code, _ = parse_ack(body)
        return packet_id, code

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.connack is not None and not self.connack.done():
            self.connack.set_exception(ClosedBeforeConnack(exc))
        if self.up and self.wire is not None:
            self.up = False
            self.wire.lost(self)

    def pause_writing(self) -> None:
        self.paused = True
        if self.wire is not None:
            self.wire.paused.add(self)

    def resume_writing(self) -> None:
        self.paused = False
        if self.wire is not None:
            self.wire.paused.discard(self)

    # The connection's terms ----------------------------------------------------------

    def accepted(self, limits: Connack, window: int, level: int) -> None:
        """The broker accepted the connection on ``limits`` (its CONNACK): the window is
        the smaller of the transport's and the broker's Receive Maximum, and the aliases of
        an earlier connection mean nothing on this one."""
        self.limits = limits
        self.level = level
        self.window = max(1, min(window, limits.receive_maximum))
        self.aliases = {}

    # Publishing ----------------------------------------------------------------------

    def take_id(self) -> int:
        """A packet identifier not in flight on this connection (0 when all are)."""
        if len(self.in_flight) >= MAX_PACKET_ID:
            return 0
        packet_id = self.next_id
        while True:
            packet_id = packet_id + 1 if packet_id < MAX_PACKET_ID else 1
            if packet_id not in self.in_flight:
                self.next_id = packet_id
                return packet_id

    def flush(self) -> None:
        if self.pending:
            if self.transport is not None:
                self.transport.write(b"".join(self.pending))
            self.pending = []

    def topic(self, name: str) -> bytes:
        """The topic as it goes on the wire (length first), remembered for this link."""
        data = name.encode()
        encoded = len(data).to_bytes(2, "big") + data
        if len(self.topics) < 16:  # a device has a few topics; a gateway may have many
            self.topics[name] = encoded
        return encoded

    def v5_publish(self, message: Message, aliases: bool) -> tuple[bytes, bytes]:
        """(topic as written, property set) of an MQTT 5 PUBLISH: the message's own
        properties (trace context) and, with ``aliases`` and room for them at the broker,
        a topic alias (the name goes once per connection, then only its number)."""
        topic = self.topics.get(message.topic) or self.topic(message.topic)
        extra = message.properties
        if not aliases or not self.limits.topic_alias_maximum:
            if not extra:
                return topic, NO_PROPERTIES
            return topic, varint(len(extra)) + extra
        alias = self.aliases.get(message.topic)
        if alias is None and len(self.aliases) < self.limits.topic_alias_maximum:
            alias = self.aliases[message.topic] = len(self.aliases) + 1
            content = bytes((TOPIC_ALIAS,)) + alias.to_bytes(2, "big") + (extra or b"")
            return topic, varint(len(content)) + content
        if alias is None:  # the broker's aliases are all taken: the name, every time
            return topic, (varint(len(extra)) + extra) if extra else NO_PROPERTIES
        content = bytes((TOPIC_ALIAS,)) + alias.to_bytes(2, "big") + (extra or b"")
        return b"\x00\x00", varint(len(content)) + content

    def publish(self, message: Message, qos: int, packet_id: int, aliases: bool) -> bytes:
        """The PUBLISH of ``message`` on this link, at this link's protocol level."""
        if self.level < 5:
            return publish_packet(message.topic.encode(), message.payload, qos, packet_id, False)
        topic, props = self.v5_publish(message, aliases)
        return publish_packet(topic[2:], message.payload, qos, packet_id, False, props)

    def admit(self) -> None:
        """Send waiting messages while the window has room."""
        waiting, wire = self.waiting, self.wire
        if wire is None or self.transport is None:
            return
        qos, aliases = wire.settings.qos, wire.settings.topic_alias
        while waiting and len(self.in_flight) < self.window:
            message = waiting.popleft()
            packet_id = self.take_id()
            self.in_flight[packet_id] = message
            self.pending.append(self.publish(message, qos, packet_id, aliases))
        self.flush()

    def replay(self, qos: int, aliases: bool) -> None:
        """After a reconnect, publish what was in flight again as new messages of the new
        (clean) session: a new packet id, DUP 0, the same payload. The old session's packet
        ids, and any PUBREL for them, mean nothing to the broker now; a QoS 2 message whose
        PUBREC came but not its PUBCOMP may reach subscribers twice, never zero times. What
        goes beyond the new connection's window waits on the device again."""
        old = list(self.in_flight.values())
        self.in_flight, self.next_id = {}, 0
        beyond = old[self.window :]
        for message in old[: self.window]:
            packet_id = self.take_id()
            self.in_flight[packet_id] = message
            self.pending.append(self.publish(message, qos, packet_id, aliases))
        if beyond:
            self.waiting = collections.deque([*beyond, *(self.waiting or ())])
        if self.waiting:
            self.admit()
        self.flush()

    def strike(self) -> Message | None:
        """At a loss: the message first in line, if this is its second loss in a row (the
        broker closes the connection over it), taken out of flight; else None."""
        head = next(iter(self.in_flight.items()), None)
        if head is None or head[1] is not self.suspect:
            self.suspect = head[1] if head is not None else None
            return None
        del self.in_flight[head[0]]
        self.suspect = None
        return head[1]
