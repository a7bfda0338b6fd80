"""barnstorm's own publish-only MQTT 3.1.1 client: the default MQTT path.

A device only ever connects, publishes, answers keepalive and reconnects, so this module
speaks exactly that part of MQTT 3.1.1 over an :class:`asyncio.Protocol`, with no client
library in between. Compared with gmqtt (kept for MQTT 5, see ``gmqtt_client.py``) it:

- writes a tick's packets for one connection in a single ``write`` (one syscall),
- settles a PUBACK with one dict lookup, no per-message coroutine or callback chain,
  and books all the PUBACKs one turn of the event loop read at once,
- keeps no per-connection timer: one housekeeping task pings idle connections and
  notices dead ones, so 50,000 idle devices cost no CPU,
- holds about half the memory per connection.

Guarantees (the same contract tests as every transport): QoS 0 messages are
*unconfirmed* once written to the socket, with at most ``LINK_BUFFER`` bytes per connection
(``MAX_BUFFERED`` in all) waiting in barnstorm's own buffer; beyond that a message is
dropped as ``send_buffer_full``. QoS 1 and 2 messages stay in flight until PUBACK (QoS 1)
or PUBCOMP (QoS 2), at most ``max_inflight`` per connection; the rest wait on the device
(up to ``OUTBOX`` messages, then ``outbox_full``).

The session model is the clean session: every CONNECT asks for one, so the broker keeps
nothing of a connection once it is gone, and a packet id of the old connection means
nothing on the new. A lost connection reconnects with exponential backoff and full jitter
(reset only once a connection has stayed up ``STABLE_AFTER`` seconds); what was in flight
is published again as new messages (a new packet id, DUP 0, the same payload and so the
same ``seq``), never a PUBREL the new session cannot know, so a subscriber may get a
message twice but an acknowledgement always means the broker has it. A message still
first in line at two losses in a row (a broker that closes the connection over it) fails
as ``rejected`` and is not sent again. A link that hears nothing for a keepalive period
is pinged, busy or not, and dropped when the ping goes unanswered.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import socket
import time
from typing import TYPE_CHECKING

from simulator.errors import AuthError, ConnectError
from simulator.messages import CUT_BY_DEVICE, Message, Outcome
from simulator.transports.base import ResultSink
from simulator.transports.mqtt.packets import (
    DISCONNECT,
    ID_BYTES,
    MAX_PACKET_ID,
    PINGREQ,
    SHORT,
    connect_packet,
    fixed_header,
    publish_packet,
    pubrel_packet,
    short_headers,
)
from simulator.transports.mqtt.settings import (
    ClosedBeforeConnack,
    MqttBase,
    backoff_delay,
    translated_errors,
)

if TYPE_CHECKING:
    from simulator.fleet.credentials import Credential
    from simulator.transports.mqtt.settings import MqttSettings

_PUBACK, _PUBREC, _PUBCOMP, _CONNACK, _PINGRESP = 4, 5, 7, 2, 13
#: QoS 2 messages in flight per connection by default; the rest wait their turn on the
#: device. Mosquitto (2.0) answers PUBREC to a QoS 2 PUBLISH beyond its in-flight quota
#: (``max_inflight_messages``, 20 by default) and then drops it, so a client that does not
#: keep a window loses messages silently, as device SDKs (which keep one) do not. A broker
#: with a smaller quota needs ``--max-inflight``.
QOS2_WINDOW = 20
#: QoS 1 and 2 messages that may wait behind the window per connection (a device's
#: outbox); beyond it a message is dropped as ``outbox_full``, on the books.
OUTBOX = 5000
#: unsent bytes barnstorm holds for one connection (beyond the kernel's socket buffer)
#: before it drops that connection's messages as ``send_buffer_full``.
LINK_BUFFER = 1024 * 1024
#: a connection up this long (seconds) resets its reconnect backoff when it is lost.
STABLE_AFTER = 10.0
#: a connection the broker closes this soon (seconds) after accepting it counts as
#: ``closed_at_once``: another client taking the same client id, most often.
AT_ONCE = 1.0
_AUTH_CODES = {4, 5}  # CONNACK: bad user name or password, not authorised
_CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}
#: At speed max, stop generating while this many messages wait for their acknowledgement
#: (all connections together), or while barnstorm holds this many unsent bytes, or half a
#: ``LINK_BUFFER`` for one connection. In real time, more than this many unsent bytes in
#: all drops messages as ``send_buffer_full``.
MAX_IN_FLIGHT = 200_000
#: bytes one read of a link's socket takes at most (more wait for the next read).
READ_BUFFER = 64 * 1024
MAX_BUFFERED = 64 * 1024 * 1024


class _Link(asyncio.BufferedProtocol):
    """One device connection: its socket, its packets in flight, its reconnect state.

    It reads into a buffer it shares with every link of its transport (a read is parsed
    at once, and what a packet left incomplete is kept per link): asyncio reads a plain
    protocol's socket with ``recv(256 KiB)``, which allocates and frees that much at every
    read of the few PUBACKs a read brings (about 3% of the CPU of a run at QoS 1)."""

    __slots__ = (
        "attempt",
        "client_id",
        "closing",
        "connack",
        "credential",
        "heard",
        "in_flight",
        "next_id",
        "owner",
        "paused",
        "pending",
        "pinged",
        "reconnecting",
        "rx",
        "suspect",
        "topics",
        "transport",
        "up",
        "up_since",
        "view",
        "waiting",
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
        self.wire: LeanMqttTransport | None = None
        self.in_flight: dict[int, Message] = {}
        self.next_id = 0
        self.rx = b""
        self.heard = False  # something came from the broker since the last housekeeping round
        self.pinged = False
        self.connack: asyncio.Future[tuple[int, bool]] | None = None
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

    # asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.rx = b""
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
            if first == 0x40 and end - at >= 4:  # PUBACK: the packet that comes by thousands
                message = in_flight.pop((buffer[at + 2] << 8) | buffer[at + 3], None)
                if message is not None:
                    acked.append(message)
                at += 4
                continue
            kind = first >> 4
            size = buffer[at + 1]
            head = 2
            if size & 0x80:  # long remaining length: never for the packets a broker sends us
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
            if kind == _PUBCOMP:
                packet_id = int.from_bytes(buffer[start : start + 2], "big")
                message = in_flight.pop(packet_id, None)
                if message is not None:
                    acked.append(message)
            elif kind == _PUBREC:
                self._released(int.from_bytes(buffer[start : start + 2], "big"))
            elif kind == _CONNACK and self.connack is not None and not self.connack.done():
                self.connack.set_result((buffer[start + 1], bool(buffer[start] & 1)))
            at = start + size
        self.rx = buffer[at:] if at < len(buffer) else b""
        if self.waiting:
            self.admit()  # into the room the PUBCOMPs made
        self.flush()  # PUBRELs and admitted messages, in one write
        if acked and self.wire is not None:
            self.wire.settled(acked)

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

    # Publishing ----------------------------------------------------------------------

    def _released(self, packet_id: int) -> None:
        """PUBREC: answer PUBREL (the message stays in flight until its PUBCOMP)."""
        if packet_id in self.in_flight and self.transport is not None:
            self.pending.append(pubrel_packet(packet_id))

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

    def admit(self) -> None:
        """Send waiting messages while the window has room."""
        waiting, wire = self.waiting, self.wire
        if wire is None or self.transport is None:
            return
        qos, window = wire.settings.qos, wire.window
        while waiting and len(self.in_flight) < window:
            message = waiting.popleft()
            packet_id = self.take_id()
            self.in_flight[packet_id] = message
            topic = message.topic.encode()
            self.pending.append(publish_packet(topic, message.payload, qos, packet_id, False))
        self.flush()

    def replay(self, qos: int) -> None:
        """After a reconnect, publish what was in flight again as new messages of the new
        (clean) session: a new packet id, DUP 0, the same payload. The old session's packet
        ids, and any PUBREL for them, mean nothing to the broker now; a QoS 2 message whose
        PUBREC came but not its PUBCOMP may reach subscribers twice, never zero times."""
        old = list(self.in_flight.values())
        self.in_flight, self.next_id = {}, 0
        for message in old:
            packet_id = self.take_id()
            self.in_flight[packet_id] = message
            topic = message.topic.encode()
            self.pending.append(publish_packet(topic, message.payload, qos, packet_id, False))
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


class LeanMqttTransport(MqttBase):
    """Publishes over MQTT 3.1.1 with barnstorm's own client, one connection per device or
    per site gateway (see the module docstring)."""

    def __init__(
        self,
        sink: ResultSink,
        settings: MqttSettings,
        client_ids: list[str],
        credentials: dict[int, Credential] | None = None,
    ) -> None:
        super().__init__(sink, settings, client_ids, credentials)
        self._links: dict[int, _Link] = {}
        #: links whose socket asked barnstorm to stop writing (their buffer is filling).
        self.paused: set[_Link] = set()
        #: QoS 1/2 messages in flight per connection (the rest wait on the device).
        default = QOS2_WINDOW if settings.qos == 2 else MAX_PACKET_ID
        self.window = min(settings.max_inflight or default, MAX_PACKET_ID)
        self._count = 0  # messages in flight on every link
        self._acked: list[Message] = []  # acknowledged in this turn of the loop, unsettled
        self._view = memoryview(bytearray(READ_BUFFER))  # every link reads into it in turn
        self._housekeeping: asyncio.Task[None] | None = None
        self._rng = random.Random()
        self._sources = settings.source_addresses

    async def open(self) -> None:
        await super().open()
        self._housekeeping = asyncio.create_task(
            self._keep_alive(), name="barnstorm-mqtt-keepalive"
        )

    # Connections ---------------------------------------------------------------------

    async def connect(self, connection: int) -> None:
        """Connect ``connection``; raises :class:`ConnectError` or :class:`AuthError`."""
        self.check_open()
        link = self._links.get(connection)
        if link is not None and link.up:
            return
        if link is None:
            credential = self.credentials.get(connection)
            link = _Link(connection, self.client_ids[connection], credential, self._view)
        if link.reconnecting is not None:
            # The link's own reconnect would later take down the connection made here.
            link.reconnecting.cancel()
            link.reconnecting = None
        link.closing = False
        try:
            await self._open_link(link)
        except (ConnectError, AuthError) as exc:
            self.sink.connection_event("failed", exc.kind)
            raise
        first = connection not in self._links and connection not in self._ever
        self._links[connection] = link
        self._ever.add(connection)
        self.sink.connection_event("up" if first else "reconnected")

    async def _open_link(self, link: _Link) -> None:
        """Open the socket, send CONNECT and wait for CONNACK."""
        settings = self.settings
        credential = link.credential
        tls = self._tls_for(credential)
        username, password = settings.username, settings.password
        if credential is not None and credential.username is not None:
            username, password = credential.username, credential.password
        loop = asyncio.get_running_loop()
        # One protocol object serves each of the link's sockets in turn: the last one must
        # be gone (its connection_lost run) before the next is made.
        for _ in range(10):
            if link.transport is None:
                break
            link.transport.abort()
            await asyncio.sleep(0)
        local = (self._sources[link.owner % len(self._sources)], 0) if self._sources else None
        with translated_errors(settings):
            async with asyncio.timeout(settings.connect_timeout):
                transport, _ = await loop.create_connection(
                    lambda: link,
                    settings.host,
                    settings.port,
                    ssl=tls or None,
                    local_addr=local,
                )
                link.connack = loop.create_future()
                transport.write(
                    connect_packet(link.client_id, settings.keepalive, username, password)
                )
                try:
                    code, _ = await link.connack
                except BaseException:
                    transport.abort()
                    raise
                finally:
                    link.connack = None
        if code:
            transport.close()
            reason = _CONNACK_REASONS.get(code, f"code {code}")
            if code in _AUTH_CODES:
                raise AuthError(f"{settings.url} refused the login ({reason})")
            raise ConnectError(f"{settings.url} refused the connection ({reason})")
        link.wire = self
        link.up = True
        link.up_since = loop.time()
        link.pinged = False
        link.heard = True
        if link.in_flight or link.waiting:
            link.replay(settings.qos)

    def lost(self, link: _Link) -> None:
        """A link went down on its own: count it and reconnect in the background."""
        self.paused.discard(link)
        link.paused = False
        if link.closing or self._state != "open":
            return
        up_for = asyncio.get_running_loop().time() - link.up_since
        if up_for >= STABLE_AFTER:
            link.attempt = 0  # a connection that stayed up: backoff starts again
        self.sink.connection_event("lost", "closed_at_once" if up_for < AT_ONCE else None)
        rejected = link.strike()
        if rejected is not None:
            self._count -= 1
            self.sink.message_done(rejected, Outcome.FAILED, "rejected")
        if link.reconnecting is None or link.reconnecting.done():
            link.reconnecting = asyncio.create_task(
                self._reconnect(link), name=f"barnstorm-mqtt-reconnect-{link.owner}"
            )

    async def _reconnect(self, link: _Link) -> None:
        base, cap = self.settings.reconnect_base, self.settings.reconnect_cap
        while not link.closing and self._state == "open":
            await asyncio.sleep(backoff_delay(link.attempt, base, cap, self._rng))
            link.attempt += 1
            if link.closing or self._state != "open" or link.up:
                return
            try:
                await self._open_link(link)
            except (ConnectError, AuthError):
                continue
            self.sink.connection_event("reconnected")
            return

    async def disconnect(self, connection: int) -> None:
        link = self._links.get(connection)
        if link is None or link.closing:
            return
        was_up = link.up
        self._close_link(link, CUT_BY_DEVICE)
        if was_up:
            self.sink.connection_event("lost")

    def _close_link(self, link: _Link, error: str) -> None:
        """Close a link for good (until ``connect``): what is in flight failed."""
        link.closing = True
        link.up = False
        link.suspect = None
        self.paused.discard(link)
        if link.reconnecting is not None:
            link.reconnecting.cancel()
            link.reconnecting = None
        if link.transport is not None:
            link.flush()
            with contextlib.suppress(Exception):  # a broker that is gone cannot be told goodbye
                link.transport.write(DISCONNECT)
            link.transport.close()
        self._fail(link, error)

    def _fail(self, link: _Link, error: str) -> None:
        failed = [*link.in_flight.values(), *(link.waiting or ())]
        link.in_flight, link.waiting = {}, None
        self._count -= len(failed)
        done = self.sink.message_done
        for message in failed:
            done(message, Outcome.FAILED, error)

    def is_connected(self, connection: int) -> bool:
        link = self._links.get(connection)
        return link is not None and link.up

    @property
    def connected(self) -> int:
        return sum(1 for link in self._links.values() if link.up)

    # Messages ------------------------------------------------------------------------

    def settled(self, messages: list[Message]) -> None:
        """Acknowledged ``messages``: settled with every other acknowledgement read in this
        turn of the event loop, at its end (see ``_settle``)."""
        if not self._acked:
            asyncio.get_running_loop().call_soon(self._settle)
        self._acked += messages

    def _settle(self) -> None:
        """Settle the acknowledgements of one turn of the event loop together. At speed max
        one turn reads a few hundred sockets of a few PUBACKs each: settled one read at a
        time, their books cost more than their reading. Each latency runs to this instant,
        never earlier than the PUBACK came (later by the rest of the turn at most, which is
        barnstorm's own loop lag, reported beside every latency); until then the messages
        count as in flight."""
        acked, self._acked = self._acked, []
        self._count -= len(acked)
        self.sink.messages_done(acked, Outcome.ACKNOWLEDGED)

    def send(self, message: Message) -> None:
        self.send_many([message])

    def send_many(self, messages: list[Message]) -> None:
        """Build every packet of the tick, then write each connection's packets at once."""
        self.check_open()
        sink = self.sink
        sink.messages_sent(messages)
        full = self._full() if self.paused else None
        if self.settings.qos:
            dropped = self._publish_acknowledged(messages, full)
        else:
            dropped = self._publish_fire_and_forget(messages, full)
        for message, error in dropped:
            sink.message_done(message, Outcome.DROPPED, error)

    def _publish_fire_and_forget(
        self, messages: list[Message], full: set[_Link] | None
    ) -> list[tuple[Message, str]]:
        """QoS 0: every message written is settled as unconfirmed; returns those dropped."""
        headers = short_headers(0x30)
        links = self._links
        touched: list[_Link] = []
        dropped: list[tuple[Message, str]] = []
        for message in messages:
            link = links.get(message.connection)
            if link is None or not link.up:
                dropped.append((message, "not_connected"))
                continue
            if full and link in full:
                dropped.append((message, "send_buffer_full"))
                continue
            topic = link.topics.get(message.topic) or link.topic(message.topic)
            payload = message.payload
            pending = link.pending
            if not pending:
                touched.append(link)
            size = len(topic) + len(payload)
            pending += (headers[size] if size < SHORT else fixed_header(0x30, size), topic, payload)
        for link in touched:
            link.flush()
        if dropped:
            gone = {id(message) for message, _ in dropped}
            messages = [message for message in messages if id(message) not in gone]
        if messages:
            self.sink.messages_done(messages, Outcome.UNCONFIRMED)
        return dropped

    def _publish_acknowledged(
        self, messages: list[Message], full: set[_Link] | None
    ) -> list[tuple[Message, str]]:
        """QoS 1/2: each message written takes a packet id of its connection's window (the
        rest wait on the device); returns those dropped."""
        qos = self.settings.qos
        first = 0x30 | (qos << 1)
        headers = short_headers(first)
        links = self._links
        touched: list[_Link] = []
        dropped: list[tuple[Message, str]] = []
        ids = ID_BYTES
        window = self.window
        count = 0
        for message in messages:
            link = links.get(message.connection)
            if link is None or not link.up:
                dropped.append((message, "not_connected"))
                continue
            if full and link in full:
                dropped.append((message, "send_buffer_full"))
                continue
            if link.waiting or len(link.in_flight) >= window:
                if link.waiting is None:
                    link.waiting = collections.deque()
                if len(link.waiting) >= OUTBOX:
                    dropped.append((message, "outbox_full"))
                    continue
                link.waiting.append(message)
                count += 1
                continue
            topic = link.topics.get(message.topic) or link.topic(message.topic)
            payload = message.payload
            pending = link.pending
            if not pending:
                touched.append(link)
            in_flight = link.in_flight
            packet_id = link.next_id % MAX_PACKET_ID + 1
            if packet_id in in_flight:
                packet_id = link.take_id()
                if not packet_id:
                    dropped.append((message, "in_flight_full"))
                    continue
            link.next_id = packet_id
            in_flight[packet_id] = message
            count += 1
            size = len(topic) + 2 + len(payload)
            head = headers[size] if size < SHORT else fixed_header(first, size)
            pending += (head, topic, ids[packet_id], payload)
        self._count += count
        for link in touched:
            link.flush()
        return dropped

    @property
    def in_flight(self) -> int:
        return self._count

    async def ready(self) -> None:
        """Wait while the broker is behind (used at speed max only): too much unacknowledged,
        or too much unsent in the sockets' buffers."""
        while self._state == "open" and (self._count > MAX_IN_FLIGHT or self._backlogged()):
            await self._wait_round(0.005)

    async def _wait_round(self, poll: float) -> None:
        """One round of waiting for the broker. A broker that is behind sends its PUBACKs
        a few at a time on each connection, so a client that reads each as it comes pays
        a system call and a turn of the event loop per PUBACK or two (at speed max on
        2,687 connections, Mosquitto's came about one per read: rounds cut the CPU of the
        run's final drain by two thirds).
        With ``read_round`` (set at speed max only) the loop is held that long, as a tick
        of the engine holds it far longer, and the acknowledgements gathered meanwhile
        are read together; a latency measured then is later than its PUBACK by up to
        the round, inside barnstorm's event-loop lag that every report shows. Without it
        (in real time) each PUBACK is read as it comes, and this waits ``poll`` seconds."""
        hold = self.settings.read_round
        if not hold:
            await asyncio.sleep(poll)
            return
        time.sleep(hold)  # noqa: ASYNC251 - holding the loop is the point (docstring)
        # The next turn of the loop reads the sockets it found ready before the hold (all
        # they hold by then), the turn after it those the broker wrote to during the hold.
        # What they read is settled here, before the caller looks at what is in flight:
        # left to the end of a turn, it would wait behind the next round or tick.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        if self._acked:
            self._settle()

    def _backlogged(self) -> bool:
        buffered = 0
        for link in self.paused:
            if link.transport is not None:
                size = link.transport.get_write_buffer_size()
                buffered += size
                if buffered > MAX_BUFFERED or size > LINK_BUFFER // 2:
                    return True
        return False

    def _full(self) -> set[_Link]:
        """Links that may not take more now: their unsent bytes are at ``LINK_BUFFER``, or
        every paused link once barnstorm holds ``MAX_BUFFERED`` unsent bytes in all."""
        sizes = {
            link: link.transport.get_write_buffer_size() if link.transport is not None else 0
            for link in self.paused
        }
        if sum(sizes.values()) >= MAX_BUFFERED:
            return set(sizes)
        return {link for link, size in sizes.items() if size >= LINK_BUFFER}

    async def close(self) -> None:
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        if self._acked:
            self._settle()
        links = list(self._links.values())
        self._links.clear()
        for link in links:
            # What is still unacknowledged now never will be: count it, do not lose it.
            self._close_link(link, "in_flight_at_stop")
        await _closed(links)
        await super().close()

    async def _keep_alive(self) -> None:
        """Every half keepalive: ping a link that heard nothing from its broker since the
        last round, however busy it is writing, and abort one whose broker did not answer
        that ping within a round (the link then reconnects). A broker that keeps the socket
        open but answers nothing is so noticed within one and a half keepalives."""
        period = max(self.settings.keepalive / 2, 0.5)
        while True:
            await asyncio.sleep(period)
            for link in list(self._links.values()):
                if not link.up or link.transport is None:
                    continue
                if link.pinged:
                    link.transport.abort()  # no answer for a whole period: the link is dead
                    continue
                if not link.heard:
                    link.transport.write(PINGREQ)
                    link.pinged = True
                link.heard = False


async def _closed(links: list[_Link], timeout: float = 5.0) -> None:
    """Wait (bounded) until the closed links' sockets are really gone."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while any(link.transport is not None for link in links) and loop.time() < deadline:
        await asyncio.sleep(0.02)
    for link in links:
        if link.transport is not None:
            link.transport.abort()
