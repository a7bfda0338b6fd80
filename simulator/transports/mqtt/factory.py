"""The MQTT transport a run gets: barnstorm's own client, for MQTT 3.1.1 and 5."""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.transports.base import ResultSink, Transport
from simulator.transports.mqtt.lean import LeanMqttTransport
from simulator.transports.mqtt.settings import MqttSettings

if TYPE_CHECKING:
    from simulator.fleet.credentials import Credential
    from simulator.traces.context import TraceContext


def mqtt_transport(
    sink: ResultSink,
    settings: MqttSettings,
    client_ids: list[str],
    credentials: dict[int, Credential] | None = None,
    trace: TraceContext | None = None,
    type_names: tuple[str, ...] = (),
) -> Transport:
    """The MQTT transport ``settings`` ask for (see the module docstring); with ``trace``,
    MQTT 5 publishes of its sampled share carry a ``traceparent`` user property."""
    return LeanMqttTransport(sink, settings, client_ids, credentials, trace, type_names)
