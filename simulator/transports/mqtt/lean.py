"""barnstorm's own publish-only MQTT client, for MQTT 3.1.1 and 5.

A device only ever connects, publishes, answers keepalive and reconnects, so this module
speaks exactly that part of MQTT over an :class:`asyncio.Protocol` per connection
(:class:`~.link.Link`), with no client library in between. Compared with gmqtt it:

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

Over MQTT 5 the broker's CONNACK sets the terms: its Receive Maximum caps the window
(with ``--max-inflight``, the smaller wins), a message larger than its Maximum Packet Size
fails here as ``packet_too_large`` and never goes out, a QoS above its Maximum QoS is a
clear error at the first connection, its Server Keep Alive replaces ours, and with
``--topic-alias`` a topic's name goes once per connection. A PUBACK, PUBREC or PUBCOMP
whose reason code is 0x80 or above fails its message with the reason's name
(``not_authorized``, ``quota_exceeded``); a DISCONNECT from the broker names why the
connection was lost. A broker that refuses MQTT 5 is one clear line, unless
``--mqtt-version auto`` asked to fall back to 3.1.1 (then the report says so).

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
import time
from typing import TYPE_CHECKING, Any

from simulator.errors import AuthError, ConnectError
from simulator.messages import CUT_BY_DEVICE, Message, Outcome
from simulator.transports.base import ResultSink
from simulator.transports.mqtt.handshake import VersionRefused, handshake
from simulator.transports.mqtt.link import READ_BUFFER, Link
from simulator.transports.mqtt.packets import (
    DISCONNECT,
    ID_BYTES,
    MAX_PACKET_ID,
    NO_PROPERTIES,
    PINGREQ,
    SHORT,
    fixed_header,
    short_headers,
)
from simulator.transports.mqtt.settings import (
    MqttBase,
    backoff_delay,
)
from simulator.transports.mqtt.tracing import PublishTracing
from simulator.transports.mqtt.v5 import (
    Connack,
)

if TYPE_CHECKING:
    from simulator.fleet.credentials import Credential
    from simulator.traces.context import TraceContext
    from simulator.transports.mqtt.settings import MqttSettings

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
#: At speed max, stop generating while this many messages wait for their acknowledgement
#: (all connections together), or while barnstorm holds this many unsent bytes, or half a
#: ``LINK_BUFFER`` for one connection. In real time, more than this many unsent bytes in
#: all drops messages as ``send_buffer_full``.
MAX_IN_FLIGHT = 200_000
MAX_BUFFERED = 64 * 1024 * 1024


class LeanMqttTransport(MqttBase):
    """Publishes over MQTT 3.1.1 or 5 with barnstorm's own client, one connection per
    device or per site gateway (see the module docstring)."""

    def __init__(
        self,
        sink: ResultSink,
        settings: MqttSettings,
        client_ids: list[str],
        credentials: dict[int, Credential] | None = None,
        trace: TraceContext | None = None,
        type_names: tuple[str, ...] = (),
    ) -> None:
        super().__init__(sink, settings, client_ids, credentials)
        #: trace context for the sampled share of MQTT 5 publishes (None: none).
        self.tracing = PublishTracing(trace, type_names, settings.url) if trace else None
        self._links: dict[int, Link] = {}
        #: links whose socket asked barnstorm to stop writing (their buffer is filling).
        self.paused: set[Link] = set()
        #: QoS 1/2 messages in flight per connection (the rest wait on the device).
        default = QOS2_WINDOW if settings.qos == 2 else MAX_PACKET_ID
        self.window = min(settings.max_inflight or default, MAX_PACKET_ID)
        self._count = 0  # messages in flight on every link
        self._acked: list[Message] = []  # acknowledged in this turn of the loop, unsettled
        self._view = memoryview(bytearray(READ_BUFFER))  # every link reads into it in turn
        self._housekeeping: asyncio.Task[None] | None = None
        self._rng = random.Random()
        self._sources = settings.source_addresses
        #: the protocol level connections use: 5 for MQTT 5 (and "auto", until a broker
        #: refuses it), else 4.
        self.level = 4 if settings.version == "3.1.1" else 5
        #: why the protocol fell back to 3.1.1 under ``auto`` (None: it did not).
        self.fell_back: str | None = None
        #: seconds of keepalive: ours, or the broker's Server Keep Alive if it asked.
        self.keepalive = float(settings.keepalive)

    @property
    def protocol(self) -> str:
        """The MQTT version the connections speak, as reports show it."""
        return "5" if self.level >= 5 else "3.1.1"

    def facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {"mqtt_version": self.protocol}
        if self.fell_back is not None:
            facts["mqtt_version_note"] = f"fell back from MQTT 5: the broker {self.fell_back}"
        return facts

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
            link = Link(connection, self.client_ids[connection], credential, self._view)
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

    async def _open_link(self, link: Link) -> None:
        """Open the socket, send CONNECT and wait for CONNACK. Under ``--mqtt-version
        auto``, a broker that refuses MQTT 5 gets one more try at 3.1.1, and every later
        connection speaks 3.1.1 too."""
        try:
            limits = await self._handshake(link, self.level)
        except VersionRefused as refused:
            if self.settings.version != "auto" or self.level < 5:
                raise ConnectError(str(refused)) from None
            self.level, self.fell_back = 4, refused.answer
            limits = await self._handshake(link, 4)
        self._accept(link, limits)

    async def _handshake(self, link: Link, level: int) -> Connack:
        """One CONNECT at ``level`` and the CONNACK's terms (see :func:`.handshake.handshake`)."""
        credential = link.credential
        username, password = self.settings.username, self.settings.password
        if credential is not None and credential.username is not None:
            username, password = credential.username, credential.password
        sources = self._sources
        local = (sources[link.owner % len(sources)], 0) if sources else None
        return await handshake(
            link, level, self.settings, self._tls_for(credential), local, (username, password)
        )

    def _accept(self, link: Link, limits: Connack) -> None:
        """The link is up on the broker's terms."""
        link.accepted(limits, self.window, self.level)
        if limits.server_keep_alive is not None and limits.server_keep_alive < self.keepalive:
            self.keepalive = max(float(limits.server_keep_alive), 1.0)
        if limits.assigned_client_id:
            link.client_id = limits.assigned_client_id
        link.wire = self
        link.up = True
        link.up_since = asyncio.get_running_loop().time()
        link.pinged = False
        link.heard = True
        if link.in_flight or link.waiting:
            link.replay(self.settings.qos, self.settings.topic_alias)

    def lost(self, link: Link) -> None:
        """A link went down on its own: count it and reconnect in the background."""
        self.paused.discard(link)
        link.paused = False
        if link.closing or self._state != "open":
            return
        up_for = asyncio.get_running_loop().time() - link.up_since
        if up_for >= STABLE_AFTER:
            link.attempt = 0  # a connection that stayed up: backoff starts again
        # The broker's own reason (an MQTT 5 DISCONNECT) comes first; else a guess.
        reason = link.farewell or ("closed_at_once" if up_for < AT_ONCE else None)
        self.sink.connection_event("lost", reason)
        rejected = link.strike()
        if rejected is not None:
            self._count -= 1
            self.sink.message_done(rejected, Outcome.FAILED, "rejected")
        if link.reconnecting is None or link.reconnecting.done():
            link.reconnecting = asyncio.create_task(
                self._reconnect(link), name=f"barnstorm-mqtt-reconnect-{link.owner}"
            )

    async def _reconnect(self, link: Link) -> None:
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

    def _close_link(self, link: Link, error: str) -> None:
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

    def _fail(self, link: Link, error: str) -> None:
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

    def refused(self, refused: list[tuple[Message, str]]) -> None:
        """Messages the broker refused (MQTT 5 reason codes): failed, with the reason."""
        self._count -= len(refused)
        done = self.sink.message_done
        for message, reason in refused:
            if self.tracing is not None:
                self.tracing.done([message], reason)
            done(message, Outcome.FAILED, reason)

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
        if self.tracing is not None:
            self.tracing.done(acked, None)
        self.sink.messages_done(acked, Outcome.ACKNOWLEDGED)

    def send(self, message: Message) -> None:
        self.send_many([message])

    def send_many(self, messages: list[Message]) -> None:
        """Build every packet of the tick, then write each connection's packets at once."""
        self.check_open()
        sink = self.sink
        tracing = self.tracing
        if tracing is not None and (self.level >= 5 or tracing.trace.envelope is not None):
            tracing.mark(messages, self.level >= 5)
        sink.messages_sent(messages)
        full = self._full() if self.paused else None
        too_large: list[Message] = []
        if self.settings.qos:
            dropped = self._publish_acknowledged(messages, full, too_large)
        else:
            dropped = self._publish_fire_and_forget(messages, full, too_large)
        for message, error in dropped:
            sink.message_done(message, Outcome.DROPPED, error)
        for message in too_large:  # never written: the broker said it would refuse them
            sink.message_done(message, Outcome.FAILED, "packet_too_large")

    def _publish_fire_and_forget(
        self, messages: list[Message], full: set[Link] | None, too_large: list[Message]
    ) -> list[tuple[Message, str]]:
        """QoS 0: every message written is settled as unconfirmed; returns those dropped
        (and adds to ``too_large`` those past the broker's Maximum Packet Size)."""
        headers = short_headers(0x30)
        links = self._links
        touched: list[Link] = []
        dropped: list[tuple[Message, str]] = []
        v5, aliases = self.level >= 5, self.settings.topic_alias
        for message in messages:
            link = links.get(message.connection)
            if link is None or not link.up:
                dropped.append((message, "not_connected"))
                continue
            if full and link in full:
                dropped.append((message, "send_buffer_full"))
                continue
            payload = message.payload
            if v5:
                topic, props = link.v5_publish(message, aliases)
                size = len(topic) + len(props) + len(payload)
                limit = link.limits.maximum_packet_size
                if limit and packet_length(size) > limit:
                    too_large.append(message)
                    continue
                parts: tuple[bytes, ...] = (topic, props, payload)
            else:
                topic = link.topics.get(message.topic) or link.topic(message.topic)
                size = len(topic) + len(payload)
                parts = (topic, payload)
            pending = link.pending
            if not pending:
                touched.append(link)
            pending.append(headers[size] if size < SHORT else fixed_header(0x30, size))
            pending += parts
        for link in touched:
            link.flush()
        if dropped or too_large:
            gone = {id(message) for message, _ in dropped} | {id(m) for m in too_large}
            messages = [message for message in messages if id(message) not in gone]
        if messages:
            self.sink.messages_done(messages, Outcome.UNCONFIRMED)
        return dropped

    def _publish_acknowledged(
        self, messages: list[Message], full: set[Link] | None, too_large: list[Message]
    ) -> list[tuple[Message, str]]:
        """QoS 1/2: each message written takes a packet id of its connection's window (the
        rest wait on the device); returns those dropped (and adds to ``too_large`` those
        past the broker's Maximum Packet Size)."""
        qos = self.settings.qos
        first = 0x30 | (qos << 1)
        headers = short_headers(first)
        links = self._links
        touched: list[Link] = []
        dropped: list[tuple[Message, str]] = []
        ids = ID_BYTES
        v5, aliases = self.level >= 5, self.settings.topic_alias
        count = 0
        for message in messages:
            link = links.get(message.connection)
            if link is None or not link.up:
                dropped.append((message, "not_connected"))
                continue
            if full and link in full:
                dropped.append((message, "send_buffer_full"))
                continue
            if link.waiting or len(link.in_flight) >= link.window:
                if link.waiting is None:
                    link.waiting = collections.deque()
                if len(link.waiting) >= OUTBOX:
                    dropped.append((message, "outbox_full"))
                    continue
                link.waiting.append(message)
                count += 1
                continue
            payload = message.payload
            if v5:
                if aliases or message.properties:
                    topic, props = link.v5_publish(message, aliases)
                else:
                    topic = link.topics.get(message.topic) or link.topic(message.topic)
                    props = NO_PROPERTIES
                size = len(topic) + 2 + len(props) + len(payload)
                limit = link.limits.maximum_packet_size
                if limit and packet_length(size) > limit:
                    too_large.append(message)
                    continue
            else:
                topic = link.topics.get(message.topic) or link.topic(message.topic)
                size = len(topic) + 2 + len(payload)
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
            head = headers[size] if size < SHORT else fixed_header(first, size)
            if v5:
                pending += (head, topic, ids[packet_id], props, payload)
            else:
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

    def _full(self) -> set[Link]:
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
        while True:
            await asyncio.sleep(max(self.keepalive / 2, 0.5))
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


def packet_length(size: int) -> int:
    """Bytes of a packet whose remaining length is ``size`` (its fixed header counted)."""
    return 1 + size + (1 if size < 0x80 else 2 if size < 0x4000 else 3 if size < 0x200000 else 4)


async def _closed(links: list[Link], timeout: float = 5.0) -> None:
    """Wait (bounded) until the closed links' sockets are really gone."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while any(link.transport is not None for link in links) and loop.time() < deadline:
        await asyncio.sleep(0.02)
    for link in links:
        if link.transport is not None:
            link.transport.abort()
