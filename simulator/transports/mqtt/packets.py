"""MQTT packets as barnstorm's publish client writes them (CONNECT, PUBLISH, PUBREL,
PINGREQ, DISCONNECT), for MQTT 3.1.1 (protocol level 4) and 5 (level 5): one framing, and
in MQTT 5 a property set after each variable header (:mod:`.v5`).
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


#: MQTT protocol levels by the version names barnstorm's options use.
LEVELS = {"3.1.1": 4, "5": 5}


def connect_packet(
    client_id: str,
    keepalive: int,
    username: str | None = None,
    password: str | None = None,
    *,
    level: int = 4,
    properties: bytes = b"\x00",
) -> bytes:
    """A CONNECT with a clean session (3.1.1) or a clean start and a session that ends with
    the connection (MQTT 5, whose ``properties`` follow the keepalive). MQTT 5 sends a
    password without a user name too; 3.1.1 never does (MQTT-3.1.2-22)."""
    flags = 0x02
    payload = utf8_string(client_id)
    if username is not None:
        flags |= 0x80
        payload += utf8_string(username)
    if password is not None and (username is not None or level >= 5):
        flags |= 0x40
        payload += utf8_string(password)
    variable = b"\x00\x04MQTT" + bytes((level, flags)) + keepalive.to_bytes(2, "big")
    if level >= 5:
        variable += properties
    body = variable + payload
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


#: an MQTT 5 PUBLISH's empty property set.
NO_PROPERTIES = b"\x00"


def publish_packet(
    topic: bytes,
    payload: bytes,
    qos: int,
    packet_id: int,
    dup: bool,
    properties: bytes | None = None,
) -> bytes:
    """A PUBLISH packet (retain off); ``properties`` (MQTT 5 only, even empty) follow the
    packet id. ``topic`` is the bare name (empty with a topic alias)."""
    parts = [len(topic).to_bytes(2, "big"), topic]
    if qos:
        parts.append(packet_id.to_bytes(2, "big"))
    if properties is not None:
        parts.append(properties)
    parts.append(payload)
    size = sum(len(part) for part in parts)
    head = fixed_header(0x30 | (qos << 1) | (0x08 if dup else 0), size)
    return b"".join((head, *parts))
