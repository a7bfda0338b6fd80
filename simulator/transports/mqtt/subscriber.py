"""An MQTT subscriber: the reference backend's MQTT ingest."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import gmqtt
from gmqtt.mqtt.constants import MQTTv311

from simulator.errors import ConnectError
from simulator.transports.mqtt.gmqtt_client import connect_client, disconnect_all
from simulator.transports.mqtt.settings import MqttSettings


class MqttSubscriber:
    """Subscribes to a topic filter and hands every message to ``on_message``.

    Used by the embedded default to count what the broker really delivered, and by
    tests as an independent observer.
    """

    def __init__(
        self,
        settings: MqttSettings,
        topic_filter: str,
        on_message: Callable[[str, bytes], None],
        client_id: str,
    ) -> None:
        self.settings = settings
        self.topic_filter = topic_filter
        self.on_message = on_message
        self.client = gmqtt.Client(client_id, clean_session=True)
        if settings.username is not None:
            self.client.set_auth_credentials(settings.username, settings.password)
        self.client.on_message = self._on_message
        self._subscribed = asyncio.Event()
        self.client.on_subscribe = lambda *args: self._subscribed.set()

    def _on_message(
        self, client: object, topic: str, payload: bytes, qos: int, properties: object
    ) -> int:
        self.on_message(topic, payload)
        return 0

    async def __aenter__(self) -> MqttSubscriber:
        await connect_client(self.client, self.settings, self.settings.ssl_context(), MQTTv311)
        self.client.subscribe(self.topic_filter, qos=1)
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                await self._subscribed.wait()
        except TimeoutError:
            raise ConnectError(f"{self.settings.url} did not confirm the subscription") from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        await disconnect_all([self.client])
