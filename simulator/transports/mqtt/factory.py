"""The MQTT transport a run gets: barnstorm's own client for MQTT 3.1.1, gmqtt for MQTT 5."""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.transports.base import ResultSink, Transport
from simulator.transports.mqtt.gmqtt_client import MqttTransport
from simulator.transports.mqtt.lean import LeanMqttTransport
from simulator.transports.mqtt.settings import MqttSettings

if TYPE_CHECKING:
    from simulator.fleet.credentials import Credential


def mqtt_transport(
    sink: ResultSink,
    settings: MqttSettings,
    client_ids: list[str],
    credentials: dict[int, Credential] | None = None,
) -> Transport:
    """The MQTT transport ``settings`` ask for (see the module docstring)."""
    if settings.client == "gmqtt" or settings.version == "5":
        return MqttTransport(sink, settings, client_ids, credentials)
    return LeanMqttTransport(sink, settings, client_ids, credentials)
