"""Opening an MQTT connection: the socket, CONNECT and the CONNACK, and what a refusal
means. The link (:class:`~.link.Link`) is the connection's protocol; this is how it comes
up. A broker that closes the socket instead of answering an MQTT 5 CONNECT, or answers
"unacceptable protocol version", refused the version (:class:`VersionRefused`: under
``--mqtt-version auto`` a reason to fall back to 3.1.1); a refused login is an
:class:`~simulator.errors.AuthError`; any other refusal a
:class:`~simulator.errors.ConnectError` with the broker's reason.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING, NoReturn

from simulator.errors import AuthError, ConnectError
from simulator.transports.mqtt.link import Link
from simulator.transports.mqtt.packets import connect_packet
from simulator.transports.mqtt.settings import ClosedBeforeConnack, translated_errors
from simulator.transports.mqtt.v5 import (
    AUTH_REFUSALS,
    Connack,
    MalformedPacket,
    parse_connack,
    reason_name,
)

if TYPE_CHECKING:
    from simulator.transports.mqtt.settings import MqttSettings

_AUTH_CODES = {4, 5}  # 3.1.1 CONNACK: bad user name or password, not authorised
_CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}
#: CONNACK codes that mean "not this protocol version": 3.1.1's 1, MQTT 5's 0x84.
_VERSION_REFUSED = {1, 0x84}


class VersionRefused(ConnectError):
    """A broker refused the protocol version (under ``auto``, a reason to fall back)."""

    def __init__(self, url: str, answer: str) -> None:
        self.answer = answer
        super().__init__(
            f"{url} refused MQTT 5: it {answer}; run with --mqtt-version 3.1.1, or auto to "
            "fall back to it"
        )


async def handshake(
    link: Link,
    level: int,
    settings: MqttSettings,
    tls: ssl.SSLContext | bool,
    local: tuple[str, int] | None,
    login: tuple[str | None, str | None],
) -> Connack:
    """Open ``link``'s socket (from ``local``, over ``tls``), send CONNECT at ``level``
    with ``login`` and wait for the CONNACK: its terms, or the refusal raised as an error."""
    username, password = login
    loop = asyncio.get_running_loop()
    # One protocol object serves each of the link's sockets in turn: the last one must
    # be gone (its connection_lost run) before the next is made.
    for _ in range(10):
        if link.transport is None:
            break
        link.transport.abort()
        await asyncio.sleep(0)
    link.level = level
    try:
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
                    connect_packet(
                        link.client_id,
                        settings.keepalive,
                        username,
                        password,
                        level=level,
                    )
                )
                try:
                    body = await link.connack
                except BaseException:
                    transport.abort()
                    raise
                finally:
                    link.connack = None
    except ConnectError as exc:
        if level >= 5 and isinstance(exc.__context__, ClosedBeforeConnack):
            raise VersionRefused(
                settings.url,
                "closed the connection without a CONNACK (what a broker that does not "
                "speak MQTT 5 does)",
            ) from None
        raise
    try:
        limits = parse_connack(body, level)
    except MalformedPacket as exc:
        transport.abort()
        raise ConnectError(f"{settings.url} answered CONNECT with a bad CONNACK ({exc})") from None
    if limits.code:
        transport.close()
        refuse(settings.url, limits, level)
    if limits.maximum_qos < settings.qos:
        transport.close()
        raise ConnectError(
            f"{settings.url} takes QoS {limits.maximum_qos} at most (Maximum QoS in its "
            f"CONNACK): run with --qos {limits.maximum_qos}"
        )
    return limits


def refuse(url: str, limits: Connack, level: int) -> NoReturn:
    """Raise the error a CONNACK's refusal means."""
    code = limits.code
    if level >= 5 and code in _VERSION_REFUSED:
        answer = "unacceptable protocol version" if code == 1 else reason_name(code)
        raise VersionRefused(url, f"answered CONNACK {answer}")
    if level >= 5:
        said = f": {limits.reason_string}" if limits.reason_string else ""
        reason = reason_name(code) + said
        if code in AUTH_REFUSALS:
            raise AuthError(f"{url} refused the login ({reason})")
        raise ConnectError(f"{url} refused the connection ({reason})")
    reason = _CONNACK_REASONS.get(code, f"code {code}")
    if code in _AUTH_CODES:
        raise AuthError(f"{url} refused the login ({reason})")
    raise ConnectError(f"{url} refused the connection ({reason})")
