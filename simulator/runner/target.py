"""The transport a run sends through, built for its target: memory, a history file, an
HTTP ingest or an MQTT broker, with the devices' credentials and, where asked, the trace
context each request or sampled publish carries."""

from __future__ import annotations

from dataclasses import replace

from simulator.fleet.build import Fleet
from simulator.fleet.credentials import load_credentials
from simulator.metrics.metrics import Metrics
from simulator.runner.config import RunConfig
from simulator.traces.context import TraceContext
from simulator.traces.export import ClientSpans
from simulator.transports.base import Transport
from simulator.transports.file import FileTransport, history_format
from simulator.transports.http import HttpTransport
from simulator.transports.memory import MemoryTransport
from simulator.transports.mqtt.factory import mqtt_transport
from simulator.transports.mqtt.settings import READ_ROUND, MqttSettings, run_prefix
from simulator.transports.parquet import ParquetTransport


def mqtt_at_speed(mqtt: MqttSettings, speed: float | None) -> MqttSettings:
    """The MQTT settings of a run at ``speed`` (None: as fast as possible). Only there does
    barnstorm read its acknowledgements in rounds while it waits for a broker that is
    behind (``MqttSettings.read_round``); in real time each is read as it comes."""
    return replace(mqtt, read_round=READ_ROUND) if speed is None else mqtt


def trace_context(config: RunConfig, exporter: ClientSpans | None) -> TraceContext:
    """The trace headers of the run's requests, its client spans going to ``exporter``."""
    trace = TraceContext(config.run_id, sample=config.traces.trace_sample)
    trace.exporter = exporter
    trace.envelope = config.traces.trace_envelope
    return trace


def build_transport(
    config: RunConfig,
    metrics: Metrics,
    fleet: Fleet,
    mqtt: MqttSettings | None,
    http: str | None,
    exporter: ClientSpans | None = None,
) -> Transport:
    """The run's transport to its target (``mqtt`` or ``http`` once the target is open)."""
    target = config.target
    if target.memory:
        return MemoryTransport(metrics)
    credentials = (
        load_credentials(config.fleet.credentials, fleet.devices.ids)
        if config.fleet.credentials
        else None
    )
    if http is not None:
        return HttpTransport(
            metrics,
            http,
            batch=target.http_batch,
            http2=target.http2,
            client=target.http_client,
            token=target.token,
            credentials=credentials,
            trace=trace_context(config, exporter),
            type_names=fleet.devices.type_names,
            timeout=target.http_timeout,
            verify=target.tls.context() if http.startswith("https://") else True,
        )
    if target.output is not None:
        if history_format(target.output) == "parquet":
            return ParquetTransport(metrics, target.output)
        return FileTransport(metrics, target.output)
    assert mqtt is not None
    prefix = mqtt.client_id_prefix or run_prefix(config.run_id)
    client_ids = [prefix + device for device in fleet.devices.ids]
    paced = mqtt_at_speed(mqtt, config.timing.speed)
    trace = trace_context(config, exporter) if config.traces.trace_mqtt else None
    return mqtt_transport(metrics, paced, client_ids, credentials, trace, fleet.devices.type_names)
