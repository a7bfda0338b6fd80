"""A hostile-broker kit for the MQTT client's tests: a scripted fake broker and a proxy that
cuts a connection at a chosen packet, both plain asyncio, both on 127.0.0.1.

The fake broker speaks just enough MQTT 3.1.1 and 5 to be a broker to a publisher
(CONNACK, PUBACK, PUBREC, PUBCOMP, PINGRESP) and can misbehave on cue: answer CONNECT with
any return code, go silent while keeping the socket open, stop reading, split every answer
into single bytes, or close the connection on a poisoned message. Over MQTT 5 it states
limits in its CONNACK (Receive Maximum, Maximum Packet Size, Topic Alias Maximum, Maximum
QoS), refuses chosen messages with a reason code, sends a DISCONNECT with a reason, or
refuses MQTT 5 itself as a 3.1.1 broker does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14


async def read_packet(reader: asyncio.StreamReader) -> tuple[int, int, bytes] | None:
    """One MQTT packet: (type, flags, body); None at the end of the stream."""
    try:
        first = (await reader.readexactly(1))[0]
        size, shift = 0, 0
        while True:
            byte = (await reader.readexactly(1))[0]
            size |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        body = await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return first >> 4, first & 0x0F, body


def encode(kind: int, flags: int, body: bytes) -> bytes:
    """A packet with its fixed header (remaining length as a varint)."""
    size, length = len(body), bytearray()
    while True:
        byte, size = size & 0x7F, size >> 7
        length.append(byte | (0x80 if size else 0))
        if not size:
            break
    return bytes([kind << 4 | flags]) + bytes(length) + body


@dataclass
class Publish:
    """A PUBLISH as the fake broker received it."""

    connection: int
    topic: str
    qos: int
    dup: bool
    packet_id: int
    payload: bytes
    #: MQTT 5: the topic alias and user properties it carried.
    alias: int = 0
    user: list[tuple[str, str]] = field(default_factory=list)
    size: int = 0  # bytes of the whole packet


def _properties(data: bytes, at: int) -> tuple[int, list[tuple[str, str]], int]:
    """(topic alias, user properties, position after) of a PUBLISH's MQTT 5 properties."""
    length, shift, end = 0, 0, at
    while True:
        byte = data[end]
        end += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    stop = end + length
    alias, user = 0, []
    while end < stop:
        identifier = data[end]
        end += 1
        if identifier == 0x23:
            alias = int.from_bytes(data[end : end + 2], "big")
            end += 2
        elif identifier == 0x26:
            pair = []
            for _ in range(2):
                size = int.from_bytes(data[end : end + 2], "big")
                pair.append(data[end + 2 : end + 2 + size].decode())
                end += 2 + size
            user.append((pair[0], pair[1]))
        else:
            raise ValueError(f"the fake broker does not know property 0x{identifier:02x}")
    return alias, user, stop


class _Listener:
    """A server on a free port of 127.0.0.1 for ``async with``: ``_serve`` per connection."""

    port: int
    _server: asyncio.Server | None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def close(self) -> None:
        assert self._server is not None
        self._server.close()


@dataclass
class FakeBroker(_Listener):
    """A scripted broker on a free port of 127.0.0.1 (``async with FakeBroker() as b``)."""

    connack_code: int = 0
    #: answer nothing after this many publishes (PUBACKs and PINGRESPs stop), socket open.
    silent_after: int | None = None
    #: stop reading the socket once connected (the client's writes pile up).
    stop_reading: bool = False
    #: write every answer one byte at a time.
    split: bool = False
    #: close the connection on a PUBLISH whose payload holds this.
    poison: bytes | None = None
    #: seconds before each PUBACK (a broker that is behind, trickling acknowledgements);
    #: when each went out (``time.monotonic()``) is kept by payload in ``acked_at``.
    ack_gap: float = 0.0
    #: MQTT 5: what a level-5 CONNECT gets: "accept", "v3" (a 3.1.1 broker's CONNACK,
    #: code 1) or "close" (the connection closed, no CONNACK).
    v5: str = "accept"
    #: MQTT 5 CONNACK properties: (identifier, value, width) triples.
    limits: list[tuple[int, int, int]] = field(default_factory=list)
    #: MQTT 5: refuse a PUBLISH whose payload holds a key with the reason code its value.
    refuse: dict[bytes, int] = field(default_factory=dict)
    #: MQTT 5: after this many publishes, send DISCONNECT with this reason and close.
    disconnect_after: tuple[int, int] | None = None
    #: protocol levels of the CONNECTs received, in order.
    levels: list[int] = field(default_factory=list)

    port: int = 0
    connections: int = 0
    open_connections: int = 0
    publishes: list[Publish] = field(default_factory=list)
    pings: int = 0
    acked_at: dict[bytes, float] = field(default_factory=dict)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def __aenter__(self) -> FakeBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            assert self._server is not None
            await asyncio.wait_for(self._server.wait_closed(), 2.0)

    @property
    def silent(self) -> bool:
        return self.silent_after is not None and len(self.publishes) >= self.silent_after

    async def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if self.split:
            for i in range(len(data)):
                writer.write(data[i : i + 1])
                await writer.drain()
        else:
            writer.write(data)
            await writer.drain()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        self.open_connections += 1
        number = self.connections
        try:
            packet = await read_packet(reader)
            if packet is None or packet[0] != CONNECT:
                return
            level = packet[2][6]
            self.levels.append(level)
            if level >= 5 and self.v5 == "close":
                return
            if level >= 5 and self.v5 == "v3":
                await self._write(writer, encode(CONNACK, 0, bytes([0, 1])))
                return
            await self._write(writer, encode(CONNACK, 0, self._connack(level)))
            if self.connack_code:
                return
            if self.stop_reading:
                await asyncio.sleep(3600)  # never read again; the test ends first
            while (packet := await read_packet(reader)) is not None:
                kind, flags, body = packet
                if kind == DISCONNECT:
                    return
                if kind == PUBLISH:
                    publish = self._publish(number, level, flags, body)
                    if self.poison is not None and self.poison in publish.payload:
                        return
                    silent = self.silent
                    self.publishes.append(publish)
                    if self.disconnect_after and len(self.publishes) >= self.disconnect_after[0]:
                        reason = bytes([self.disconnect_after[1], 0])
                        await self._write(writer, encode(DISCONNECT, 0, reason))
                        return
                    if silent or not publish.qos:
                        continue
                    if self.ack_gap:
                        await asyncio.sleep(self.ack_gap)
                    await self._write(writer, self._answer(publish, level))
                    self.acked_at[publish.payload] = time.monotonic()
                elif kind == PUBREL and not self.silent:
                    await self._write(writer, encode(PUBCOMP, 0, body[:2]))
                elif kind == PINGREQ:
                    self.pings += 1
                    if not self.silent:
                        await self._write(writer, encode(PINGRESP, 0, b""))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.open_connections -= 1
            writer.close()
            self._tasks.discard(task)

    def _connack(self, level: int) -> bytes:
        if level < 5:
            return bytes([0, self.connack_code])
        props = b"".join(
            bytes([identifier]) + value.to_bytes(width, "big")
            for identifier, value, width in self.limits
        )
        return bytes([0, self.connack_code, len(props)]) + props

    def _publish(self, number: int, level: int, flags: int, body: bytes) -> Publish:
        qos = (flags >> 1) & 3
        topic_length = int.from_bytes(body[:2], "big")
        topic = body[2 : 2 + topic_length].decode()
        at = 2 + topic_length
        packet_id = int.from_bytes(body[at : at + 2], "big") if qos else 0
        at += 2 if qos else 0
        alias, user = 0, list[tuple[str, str]]()
        if level >= 5:
            alias, user, at = _properties(body, at)
        size = len(encode(PUBLISH, flags, body))
        return Publish(number, topic, qos, bool(flags & 8), packet_id, body[at:], alias, user, size)

    def _answer(self, publish: Publish, level: int) -> bytes:
        """The PUBACK or PUBREC of a publish; over MQTT 5 with a refusal's reason code."""
        kind = PUBACK if publish.qos == 1 else PUBREC
        packet_id = publish.packet_id.to_bytes(2, "big")
        codes = [code for key, code in self.refuse.items() if key in publish.payload]
        if level >= 5 and codes:
            # A success's reason code alone (no properties), a refusal's with them: both
            # forms MQTT 5 allows, so both of the client's readings are exercised.
            tail = bytes([codes[0]]) if codes[0] < 0x80 else bytes([codes[0], 0])
            return encode(kind, 0, packet_id + tail)
        return encode(kind, 0, packet_id)


@dataclass
class CuttingProxy(_Listener):
    """Forwards to an upstream broker and cuts the connection (both sides, the packet not
    forwarded) when the client sends its ``nth`` packet of type ``cut_at``, once."""

    upstream_port: int
    cut_at: int
    nth: int = 1
    port: int = 0
    cuts: int = 0
    seen: int = 0
    _server: asyncio.Server | None = None

    async def __aenter__(self) -> CuttingProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def downstream() -> None:
            with contextlib.suppress(ConnectionError):
                while data := await up_reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.close()

        back = asyncio.create_task(downstream())
        try:
            while (packet := await read_packet(reader)) is not None:
                kind, flags, body = packet
                if kind == self.cut_at and not self.cuts:
                    self.seen += 1
                    if self.seen == self.nth:
                        self.cuts += 1
                        writer.transport.abort()
                        up_writer.transport.abort()
                        return
                up_writer.write(encode(kind, flags, body))
                await up_writer.drain()
        except ConnectionError:
            pass
        finally:
            up_writer.close()
            back.cancel()
