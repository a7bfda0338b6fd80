"""The gmqtt publish path: MQTT 5, or ``--mqtt-client gmqtt``.

:func:`~simulator.transports.mqtt.factory.mqtt_transport` picks the publish path: barnstorm's own
lean MQTT 3.1.1 client (``lean.py``, the default: publish-only, several times cheaper per
message and per connection) or this one. Both keep the same transport contract and are
tested against the same broker.

gmqtt is asyncio-native and was measured several times faster than the other libraries
(see DESIGN.md). Its ``publish`` is synchronous and it reports acknowledgements only by
releasing the stored packet of a QoS 1/2 message, so each client gets an
:class:`_AckStore`: the ``persistent_storage`` gmqtt accepts in its constructor, which
tells us exactly which message a PUBACK or PUBCOMP settled, and which ones a clean
reconnect discarded.

Connections are one per device, or one per site gateway that publishes for its site;
either way a connection is named by the fleet index of the device that owns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import gmqtt
from gmqtt.mqtt.constants import MQTTv50, MQTTv311
from gmqtt.storage import PersistentStorage

from simulator.errors import AuthError, ConnectError
from simulator.messages import CUT_BY_DEVICE, Message, Outcome
from simulator.transports.base import ResultSink
from simulator.transports.mqtt.settings import (
    MqttBase,
    MqttSettings,
    backoff_delay,
    translated_errors,
)

if TYPE_CHECKING:
    from simulator.fleet.credentials import Credential

# gmqtt logs every refused or lost connection at WARNING; barnstorm counts them instead.
logging.getLogger("gmqtt").setLevel(logging.CRITICAL)

_AUTH_CODES = {4, 5, 0x86, 0x87}


def with_dup(raw: bytes) -> bytes:
    """A PUBLISH packet with its DUP flag set (other packets unchanged)."""
    if raw and raw[0] >> 4 == 3:  # PUBLISH
        return bytes([raw[0] | 0x08]) + raw[1:]
    return raw


class _AckStore(PersistentStorage):  # type: ignore[misc]
    """gmqtt's in-flight store, reporting which message each PUBACK/PUBCOMP settles."""

    def __init__(self, sink: ResultSink) -> None:
        super().__init__()
        self.sink = sink
        self.publishing: Message | None = None
        self.owners: dict[int, Message] = {}

    def push_message(self, mid: int, raw_package: bytes) -> None:
        # Called inside gmqtt's publish() for QoS > 0, and again with the same mid when a
        # QoS 2 PUBREC swaps the stored PUBLISH for its PUBREL.
        if mid not in self.owners and self.publishing is not None:
            self.owners[mid] = self.publishing
        super().push_message(mid, raw_package)

    def remove_message_by_mid(self, mid: int) -> None:
        super().remove_message_by_mid(mid)
        message = self.owners.pop(mid, None)
        if message is not None:
            self.sink.message_done(message, Outcome.ACKNOWLEDGED)

    def get_all(self) -> list[tuple[int, bytes]]:
        """The in-flight packets, as gmqtt replays them after a reconnect: a PUBLISH sent
        again carries the DUP flag, as MQTT requires (gmqtt would resend it unchanged)."""
        return [(mid, with_dup(raw)) for mid, raw in super().get_all()]

    def clear(self) -> None:
        # A reconnect without a session on the broker discards what was in flight.
        super().clear()
        self.fail_all("connection_lost")

    def fail_all(self, error: str) -> None:
        owners, self.owners = self.owners, {}
        for message in owners.values():
            self.sink.message_done(message, Outcome.FAILED, error)


class _Client(gmqtt.Client):  # type: ignore[misc]
    """A gmqtt client whose automatic reconnects back off exponentially with full jitter
    (gmqtt itself waits a fixed delay, so a whole fleet would return in lockstep)."""

    def __init__(self, client_id: str, settings: MqttSettings, **kwargs: Any) -> None:
        super().__init__(client_id, **kwargs)
        self.backoff = (settings.reconnect_base, settings.reconnect_cap)
        self.attempt = 0
        self.rng = random.Random()

    async def reconnect(self, delay: bool = False) -> None:
        if delay:
            self.reconnect_delay = backoff_delay(self.attempt, *self.backoff, self.rng)
            self.attempt += 1
        await super().reconnect(delay)


class _Connection:
    """One gmqtt client and what barnstorm tracks about it."""

    def __init__(
        self,
        client_id: str,
        sink: ResultSink,
        settings: MqttSettings,
        credential: Credential | None = None,
    ) -> None:
        self.store = _AckStore(sink)
        self.client = _Client(
            client_id, settings, clean_session=True, persistent_storage=self.store
        )
        if credential is not None and credential.username is not None:
            self.client.set_auth_credentials(credential.username, credential.password)
        elif settings.username is not None:
            self.client.set_auth_credentials(settings.username, settings.password)
        self.ever_connected = False
        self.closing = False
        self.sink = sink
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect

    def _on_connect(self, client: object, flags: int, rc: int, properties: object) -> None:
        self.client.attempt = 0
        if self.ever_connected:
            self.sink.connection_event("reconnected")
        self.ever_connected = True

    def _on_disconnect(self, client: object, packet: object, exc: object = None) -> None:
        if self.ever_connected and not self.closing:
            self.sink.connection_event("lost")


class MqttTransport(MqttBase):
    """Publishes over MQTT with gmqtt, one connection per device or per site gateway."""

    def __init__(
        self,
        sink: ResultSink,
        settings: MqttSettings,
        client_ids: list[str],
        credentials: dict[int, Credential] | None = None,
    ) -> None:
        super().__init__(sink, settings, client_ids, credentials)
        self._connections: dict[int, _Connection] = {}
        self._ever: set[int] = set()  # connections that were up once: coming back is a reconnect
        self._version = MQTTv50 if settings.version == "5" else MQTTv311

    async def connect(self, connection: int) -> None:
        """Connect ``connection``; raises :class:`ConnectError` or :class:`AuthError`."""
        self.check_open()
        existing = self._connections.get(connection)
        if existing is not None and existing.client.is_connected:
            return
        credential = self.credentials.get(connection)
        state = _Connection(self.client_ids[connection], self.sink, self.settings, credential)
        try:
            await connect_client(
                state.client, self.settings, self._tls_for(credential), self._version
            )
        except (ConnectError, AuthError) as exc:
            self.sink.connection_event("failed", exc.kind)
            await _abandon(state.client)
            raise
        self._connections[connection] = state
        self.sink.connection_event("reconnected" if connection in self._ever else "up")
        self._ever.add(connection)

    async def disconnect(self, connection: int) -> None:
        state = self._connections.pop(connection, None)
        if state is None:
            return
        state.closing = True
        state.store.fail_all(CUT_BY_DEVICE)
        self.sink.connection_event("lost")
        await disconnect_all([state.client])

    def is_connected(self, connection: int) -> bool:
        state = self._connections.get(connection)
        return state is not None and bool(state.client.is_connected)

    def send(self, message: Message) -> None:
        self.check_open()
        self.sink.message_sent(message)
        state = self._connections.get(message.connection)
        if state is None or not state.client.is_connected:
            self.sink.message_done(message, Outcome.DROPPED, "not_connected")
            return
        qos = self.settings.qos
        state.store.publishing = message
        try:
            state.client.publish(message.topic, message.payload, qos=qos)
        except Exception:  # gmqtt raises plain exceptions from its packet builders
            state.store.owners = {k: v for k, v in state.store.owners.items() if v is not message}
            self.sink.message_done(message, Outcome.FAILED, "send")
            return
        finally:
            state.store.publishing = None
        if qos == 0:
            self.sink.message_done(message, Outcome.UNCONFIRMED)

    @property
    def in_flight(self) -> int:
        return sum(len(state.store.owners) for state in self._connections.values())

    @property
    def connected(self) -> int:
        return sum(1 for state in self._connections.values() if state.client.is_connected)

    async def close(self) -> None:
        states = list(self._connections.values())
        self._connections.clear()
        for state in states:
            state.closing = True
            # What is still unacknowledged now will never be: count it, do not lose it.
            state.store.fail_all("in_flight_at_stop")
        await disconnect_all(state.client for state in states)
        await super().close()


async def connect_client(
    client: Any, settings: MqttSettings, tls: ssl.SSLContext | bool, version: int
) -> None:
    """Connect one gmqtt client, translating its failures into barnstorm errors."""
    try:
        with translated_errors(settings):
            async with asyncio.timeout(settings.connect_timeout):
                await client.connect(
                    settings.host,
                    settings.port,
                    ssl=tls,
                    keepalive=settings.keepalive,
                    version=version,
                )
    except gmqtt.MQTTConnectError as exc:
        code = getattr(exc, "_code", None)
        if code in _AUTH_CODES:
            raise AuthError(f"{settings.url} refused the login ({exc})") from None
        raise ConnectError(f"{settings.url} refused the connection ({exc})") from None


async def _abandon(client: Any) -> None:
    """Make sure a client whose connect failed does not keep retrying in the background."""
    client.stop_reconnect()
    with contextlib.suppress(Exception):  # best effort: the connection already failed
        await asyncio.wait_for(client.disconnect(), 1.0)


async def disconnect_all(clients: Iterable[Any], timeout: float = 5.0) -> None:
    async def one(client: Any) -> None:
        with contextlib.suppress(Exception):  # a broker that is gone cannot be told goodbye
            await asyncio.wait_for(client.disconnect(), timeout)

    await asyncio.gather(*(one(c) for c in clients))
