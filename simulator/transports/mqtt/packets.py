"""MQTT 3.1.1 packets as barnstorm's publish client writes them (CONNECT, PUBLISH, PUBREL,
PINGREQ, DISCONNECT).
"""

from __future__ import annotations

import functools

PINGREQ = b"\xc0\x00"


DISCONNECT = b"\xe0\x00"


MAX_PACKET_ID = 65535  # MQTT packet identifiers per connection


#: Packet identifiers as the two bytes on the wire, built once.
ID_BYTES = [i.to_bytes(2, "big") for i in range(MAX_PACKET_ID + 1)]


def remaining_length(length: int) -> bytes:
    """MQTT's variable-length encoding of a packet's remaining length."""
    if length < 0x80:
        return bytes((length,))
    out = bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        out.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(out)


def utf8_string(value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return len(data).to_bytes(2, "big") + data


def connect_packet(
    client_id: str, keepalive: int, username: str | None = None, password: str | None = None
) -> bytes:
    """An MQTT 3.1.1 CONNECT with a clean session."""
    flags = 0x02
    payload = utf8_string(client_id)
    if username is not None:
        flags |= 0x80
        payload += utf8_string(username)
        if password is not None:
            flags |= 0x40
            payload += utf8_string(password)
    body = b"\x00\x04MQTT\x04" + bytes((flags,)) + keepalive.to_bytes(2, "big") + payload
    return b"\x10" + remaining_length(len(body)) + body


def fixed_header(first: int, size: int) -> bytes:
    """A packet's first byte and its remaining length, short forms first."""
    if size < 0x80:
        return bytes((first, size))
    if size < 0x4000:
        return bytes((first, (size & 0x7F) | 0x80, size >> 7))
    return bytes((first,)) + remaining_length(size)


#: remaining lengths below this have their fixed header in a table (see ``short_headers``).
SHORT = 0x4000


@functools.cache
def short_headers(first: int) -> tuple[bytes, ...]:
    """Every fixed header of packets starting with ``first`` and a remaining length below
    ``SHORT``, by that length: a lookup per PUBLISH instead of building one (~0.6 MB)."""
    return tuple(fixed_header(first, size) for size in range(SHORT))


def pubrel_packet(packet_id: int) -> bytes:
    return b"\x62\x02" + ID_BYTES[packet_id]


def publish_packet(topic: bytes, payload: bytes, qos: int, packet_id: int, dup: bool) -> bytes:
    """A PUBLISH packet (retain off)."""
    size = 2 + len(topic) + (2 if qos else 0) + len(payload)
    head = fixed_header(0x30 | (qos << 1) | (0x08 if dup else 0), size)
    if qos:
        return b"".join(
            (head, len(topic).to_bytes(2, "big"), topic, packet_id.to_bytes(2, "big"), payload)
        )
    return b"".join((head, len(topic).to_bytes(2, "big"), topic, payload))
