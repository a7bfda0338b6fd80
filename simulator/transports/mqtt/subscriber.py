"""The reference backend's MQTT ingest: a subscriber on aiomqtt (paho underneath).

It is deliberately not barnstorm's own publishing client: what
the backend stores, and so what a run's read-back counts as delivered, is judged by an MQTT
client barnstorm did not write. A lost connection is retried with a capped backoff (the
messages the broker sent meanwhile to nobody are missing from the store, and a read-back
counts them as lost, as it should).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable

import aiomqtt
from aiomqtt.client import ProtocolVersion

from simulator.errors import ConnectError
from simulator.transports.mqtt.settings import MqttSettings

log = logging.getLogger(__name__)

#: the longest wait between two attempts to reconnect, in seconds.
RECONNECT_CAP = 5.0
#: how long leaving waits for the broker to see the DISCONNECT, in seconds.
EXIT_TIMEOUT = 3.0


class MqttSubscriber:
    """Subscribes to a topic filter (at QoS 1 unless told) and hands every message to
    ``on_message``: its topic, payload, and (over MQTT 5, ``mqtt5=True``) the
    ``traceparent`` its publisher put in its user properties."""

    def __init__(
        self,
        settings: MqttSettings,
        topic_filter: str,
        on_message: Callable[[str, bytes, str | None], None],
        client_id: str,
        qos: int = 1,
        mqtt5: bool = False,
    ) -> None:
        self.settings = settings
        self.topic_filter = topic_filter
        self.on_message = on_message
        self.qos = qos
        context = settings.ssl_context()
        self.client = aiomqtt.Client(
            settings.host,
            settings.port,
            username=settings.username,
            password=settings.password,
            identifier=client_id,
            protocol=ProtocolVersion.V5 if mqtt5 else ProtocolVersion.V311,
            clean_session=None if mqtt5 else True,  # MQTT 5 says clean start instead
            keepalive=settings.keepalive,
            timeout=settings.connect_timeout,
            tls_context=context if isinstance(context, ssl.SSLContext) else None,
        )
        self._task: asyncio.Task[None] | None = None
        #: connections lost while subscribed (each one a gap in what the store holds).
        self.reconnects = 0

    async def _subscribe(self) -> None:
        await self.client.__aenter__()
        try:
            await self.client.subscribe(self.topic_filter, qos=self.qos)
        except BaseException:
            await self.client.__aexit__(None, None, None)
            raise

    async def __aenter__(self) -> MqttSubscriber:
        try:
            await self._subscribe()
        except aiomqtt.MqttError as exc:
            raise ConnectError(f"cannot connect to {self.settings.url}: {exc}") from None
        self._task = asyncio.create_task(self._consume(), name="barnstorm-subscriber")
        return self

    async def _consume(self) -> None:
        delay = 0.1
        while True:
            try:
                async for message in self.client.messages:
                    payload = message.payload
                    if isinstance(payload, bytes | bytearray):
                        self.on_message(str(message.topic), bytes(payload), _traceparent(message))
                    delay = 0.1
            except aiomqtt.MqttError as exc:
                log.warning("MQTT subscriber lost %s: %s", self.settings.url, exc)
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                async with asyncio.timeout(EXIT_TIMEOUT):
                    await self.client.__aexit__(None, None, None)
            while True:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_CAP)
                try:
                    await self._subscribe()
                except aiomqtt.MqttError as exc:
                    log.warning("MQTT subscriber: no reconnect to %s: %s", self.settings.url, exc)
                    continue
                self.reconnects += 1
                break

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # A graceful DISCONNECT waits for the broker; a stalled one gets a few seconds.
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            async with asyncio.timeout(EXIT_TIMEOUT):
                await self.client.__aexit__(None, None, None)


def _traceparent(message: aiomqtt.Message) -> str | None:
    """The ``traceparent`` among an MQTT 5 message's user properties, or None."""
    properties = message.properties
    for key, value in getattr(properties, "UserProperty", None) or ():
        if key == "traceparent":
            return str(value)
    return None
