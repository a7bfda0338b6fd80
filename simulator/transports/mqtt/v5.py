"""MQTT 5's additions to the framing barnstorm's client speaks: properties and reason codes.

MQTT 5 keeps 3.1.1's packets and adds, to most of them, a property set (a length, then
identifier-value pairs) and a reason code. A publisher meets them in CONNACK (what the
broker allows: its Receive Maximum, Maximum Packet Size, Topic Alias Maximum, Maximum QoS,
a Server Keep Alive, an Assigned Client Identifier), in PUBACK, PUBREC and PUBCOMP (0x80
and above: the broker refused the message, and says why), and in a DISCONNECT the broker
sends before it closes (why it did). A refusal is a failed message on the books with its
reason's name (``not_authorized``, ``quota_exceeded``), never an acknowledgement.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Property identifiers (MQTT 5.0, 2.2.2.2), with the ones a publisher reads or writes.
SESSION_EXPIRY = 0x11
ASSIGNED_CLIENT_ID = 0x12
SERVER_KEEP_ALIVE = 0x13
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
MAXIMUM_QOS = 0x24
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27

#: How each property's value is written: its size in bytes, or a kind.
_WIDTH = {
    0x01: 1,  # payload format indicator
    0x02: 4,  # message expiry interval
    0x03: "utf8",  # content type
    0x08: "utf8",  # response topic
    0x09: "binary",  # correlation data
    0x0B: "varint",  # subscription identifier
    SESSION_EXPIRY: 4,
    ASSIGNED_CLIENT_ID: "utf8",
    SERVER_KEEP_ALIVE: 2,
    0x15: "utf8",  # authentication method
    0x16: "binary",  # authentication data
    0x17: 1,  # request problem information
    0x18: 4,  # will delay interval
    0x19: 1,  # request response information
    0x1A: "utf8",  # response information
    0x1C: "utf8",  # server reference
    REASON_STRING: "utf8",
    RECEIVE_MAXIMUM: 2,
    TOPIC_ALIAS_MAXIMUM: 2,
    TOPIC_ALIAS: 2,
    MAXIMUM_QOS: 1,
    0x25: 1,  # retain available
    USER_PROPERTY: "pair",
    MAXIMUM_PACKET_SIZE: 4,
    0x28: 1,  # wildcard subscription available
    0x29: 1,  # subscription identifier available
    0x2A: 1,  # shared subscription available
}

#: Reason codes (MQTT 5.0, 2.4) by value, as the names barnstorm books them under.
REASONS = {
    0x00: "success",
    0x10: "no_matching_subscribers",
    0x80: "unspecified_error",
    0x81: "malformed_packet",
    0x82: "protocol_error",
    0x83: "implementation_specific_error",
    0x84: "unsupported_protocol_version",
    0x85: "client_identifier_not_valid",
    0x86: "bad_user_name_or_password",
    0x87: "not_authorized",
    0x88: "server_unavailable",
    0x89: "server_busy",
    0x8A: "banned",
    0x8B: "server_shutting_down",
    0x8C: "bad_authentication_method",
    0x8D: "keep_alive_timeout",
    0x8E: "session_taken_over",
    0x90: "topic_name_invalid",
    0x91: "packet_identifier_in_use",
    0x92: "packet_identifier_not_found",
    0x93: "receive_maximum_exceeded",
    0x94: "topic_alias_invalid",
    0x95: "packet_too_large",
    0x96: "message_rate_too_high",
    0x97: "quota_exceeded",
    0x98: "administrative_action",
    0x99: "payload_format_invalid",
    0x9A: "retain_not_supported",
    0x9B: "qos_not_supported",
    0x9C: "use_another_server",
    0x9D: "server_moved",
    0x9F: "connection_rate_exceeded",
    0xA0: "maximum_connect_time",
}

#: CONNACK reasons that mean the credentials (not the connection) were refused.
AUTH_REFUSALS = {0x86, 0x87, 0x8A, 0x8C}


def reason_name(code: int) -> str:
    """The name a reason code is booked under (``reason_0xa7`` for one MQTT 5 lacks)."""
    return REASONS.get(code, f"reason_0x{code:02x}")


class MalformedPacket(ValueError):
    """A broker's packet that does not parse (the link is then dropped)."""


def varint(value: int) -> bytes:
    """MQTT's variable byte integer (remaining lengths, property lengths)."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    """(value, position after it) of the variable byte integer at ``at``."""
    value, shift = 0, 0
    for length in range(4):
        if at + length >= len(data):
            raise MalformedPacket("a variable byte integer runs past the packet")
        byte = data[at + length]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at + length + 1
        shift += 7
    raise MalformedPacket("a variable byte integer longer than four bytes")


def _utf8(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def properties(*pairs: tuple[int, int | str | tuple[str, str]]) -> bytes:
    """A property set as it goes on the wire: its length, then each property."""
    body = bytearray()
    for identifier, value in pairs:
        body.append(identifier)
        width = _WIDTH[identifier]
        if identifier == USER_PROPERTY:
            assert isinstance(value, tuple)
            body += _utf8(value[0]) + _utf8(value[1])
        elif isinstance(width, int):
            assert isinstance(value, int)
            body += value.to_bytes(width, "big")
        elif width == "varint":
            assert isinstance(value, int)
            body += varint(value)
        else:
            assert isinstance(value, str)
            body += _utf8(value)
    return varint(len(body)) + bytes(body)


def user_properties(pairs: list[tuple[str, str]]) -> bytes:
    """User properties (trace context, for one) as a message's ``properties``: the
    properties without the set's length, which the link writes (with a topic alias in the
    same set, when it has one)."""
    body = bytearray()
    for name, value in pairs:
        body.append(USER_PROPERTY)
        body += _utf8(name) + _utf8(value)
    return bytes(body)


@dataclass
class Properties:
    """A parsed property set: single values by identifier, user properties in order."""

    values: dict[int, int | str | bytes] = field(default_factory=dict)
    user: list[tuple[str, str]] = field(default_factory=list)

    def integer(self, identifier: int) -> int | None:
        value = self.values.get(identifier)
        return value if isinstance(value, int) else None

    def text(self, identifier: int) -> str | None:
        value = self.values.get(identifier)
        return value if isinstance(value, str) else None


def read_properties(data: bytes, at: int) -> tuple[Properties, int]:
    """The property set at ``at`` and the position after it."""
    length, at = read_varint(data, at)
    end = at + length
    if end > len(data):
        raise MalformedPacket("a property set runs past the packet")
    found = Properties()
    while at < end:
        identifier = data[at]
        at += 1
        width = _WIDTH.get(identifier)
        if width is None:
            raise MalformedPacket(f"unknown property 0x{identifier:02x}")
        if isinstance(width, int):
            found.values[identifier] = int.from_bytes(data[at : at + width], "big")
            at += width
        elif width == "varint":
            found.values[identifier], at = read_varint(data, at)
        elif width == "pair":
            key, at = _read_string(data, at)
            value, at = _read_string(data, at)
            found.user.append((key, value))
        else:
            raw, at = _read_binary(data, at)
            found.values[identifier] = raw.decode(errors="replace") if width == "utf8" else raw
    if at != end:
        raise MalformedPacket("a property runs past its property set")
    return found, end


def _read_binary(data: bytes, at: int) -> tuple[bytes, int]:
    if at + 2 > len(data):
        raise MalformedPacket("a string runs past the packet")
    length = int.from_bytes(data[at : at + 2], "big")
    return data[at + 2 : at + 2 + length], at + 2 + length


def _read_string(data: bytes, at: int) -> tuple[str, int]:
    raw, at = _read_binary(data, at)
    return raw.decode(errors="replace"), at


@dataclass(frozen=True)
class Connack:
    """What a CONNACK said: the reason (0 accepted) and, over MQTT 5, the broker's limits."""

    code: int
    session_present: bool = False
    #: QoS 1/2 publishes the broker takes in flight at once (65,535: no limit given).
    receive_maximum: int = 65535
    #: bytes of the largest packet the broker takes (0: no limit given).
    maximum_packet_size: int = 0
    #: topic aliases the broker takes (0: none).
    topic_alias_maximum: int = 0
    #: the highest QoS the broker takes (2 when not given).
    maximum_qos: int = 2
    #: the keepalive the broker wants instead of ours (None: ours).
    server_keep_alive: int | None = None
    #: the client id the broker gave a connection that sent an empty one.
    assigned_client_id: str | None = None
    reason_string: str | None = None


def parse_connack(body: bytes, version: int) -> Connack:
    """A CONNACK's body (after the fixed header) as :class:`Connack`. A 3.1.1 broker answers
    an MQTT 5 CONNECT with a 3.1.1 CONNACK (two bytes, code 1): that parses too."""
    if len(body) < 2:
        raise MalformedPacket("CONNACK shorter than two bytes")
    code, present = body[1], bool(body[0] & 1)
    if version < 5 or len(body) == 2:
        return Connack(code, present)
    found, _ = read_properties(body, 2)
    maximum_qos = found.integer(MAXIMUM_QOS)
    return Connack(
        code,
        present,
        receive_maximum=found.integer(RECEIVE_MAXIMUM) or 65535,
        maximum_packet_size=found.integer(MAXIMUM_PACKET_SIZE) or 0,
        topic_alias_maximum=found.integer(TOPIC_ALIAS_MAXIMUM) or 0,
        maximum_qos=2 if maximum_qos is None else maximum_qos,
        server_keep_alive=found.integer(SERVER_KEEP_ALIVE),
        assigned_client_id=found.text(ASSIGNED_CLIENT_ID),
        reason_string=found.text(REASON_STRING),
    )


def parse_ack(body: bytes) -> tuple[int, int, str | None]:
    """(packet id, reason code, reason string) of an MQTT 5 PUBACK, PUBREC or PUBCOMP body;
    a body of two bytes means success."""
    if len(body) < 2:
        raise MalformedPacket("acknowledgement shorter than its packet id")
    packet_id = int.from_bytes(body[:2], "big")
    if len(body) == 2:
        return packet_id, 0, None
    code = body[2]
    reason = None
    if len(body) > 3:
        found, _ = read_properties(body, 3)
        reason = found.text(REASON_STRING)
    return packet_id, code, reason


def parse_disconnect(body: bytes) -> tuple[int, str | None]:
    """(reason code, reason string) of a broker's MQTT 5 DISCONNECT body."""
    if not body:
        return 0, None
    reason = None
    if len(body) > 1:
        found, _ = read_properties(body, 1)
        reason = found.text(REASON_STRING)
    return body[0], reason
