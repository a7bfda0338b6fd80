"""The trace options of ``simulate run`` and ``simulate mixed``: where barnstorm receives
the backend's OpenTelemetry spans, and what share of its own requests it marks sampled."""

from __future__ import annotations

import re
from typing import Any

from simulator.cli.options import option, stacked
from simulator.errors import ConfigError
from simulator.redact import register_url
from simulator.runner.config import TraceConfig
from simulator.traces.context import sample_share
from simulator.traces.export import export_url
from simulator.traces.receiver import parse_listen

trace_options = stacked(
    option(
        "--otlp-receiver",
        metavar="HOST:PORT",
        help="Receive the backend's OpenTelemetry traces (OTLP/HTTP, protobuf or JSON) at "
        "http://HOST:PORT/v1/traces while the run lasts, and join its spans to the requests "
        "they continue: server time, database spans and their statements (N+1), external "
        "calls and uncovered time per endpoint, in the report.",
    ),
    option(
        "--trace-sample",
        metavar="SHARE",
        help="The share of requests (and of --trace-mqtt publishes), 10% or 0.1, whose trace "
        "barnstorm marks sampled (traceparent flag 01, sentry-trace -1). Default: 100% with "
        "--otlp-receiver or --otlp-export (a sampler that follows its caller would send "
        "nothing back), else 0%: none marked, the backend's own sampler decides.",
    ),
    option(
        "--otlp-export",
        metavar="URL",
        help="Send barnstorm's own client span of each sampled request over OTLP/HTTP to URL "
        "(a collector, Jaeger, Tempo: http://127.0.0.1:4318), where it meets the backend's "
        "spans of the same trace.",
    ),
    option(
        "--trace-mqtt",
        is_flag=True,
        help="MQTT 5 publishes of the --trace-sample share carry a traceparent user property, "
        "so the backend's consumer can continue their trace (MQTT 5, or --trace-envelope).",
    ),
    option(
        "--trace-envelope",
        metavar="FIELD",
        help="Over MQTT 3.1.1, which has no user properties, the --trace-mqtt publishes carry "
        "their traceparent in this field of the JSON payload (e.g. traceparent); nothing is "
        "added to payloads otherwise.",
    ),
)


def trace_config(options: dict[str, Any]) -> TraceConfig:
    """The trace options, checked; errors name the flag."""
    listen = options.get("otlp_receiver")
    if listen:
        parse_listen(listen)
    export = options.get("otlp_export")
    if export:
        export = export_url(export)
        register_url(export)
    given = options.get("trace_sample")
    try:
        sample = sample_share(given) if given else (1.0 if listen or export else 0.0)
    except ValueError as exc:
        raise ConfigError("--trace-sample", str(exc).removeprefix("--trace-sample: ")) from None
    trace_mqtt = bool(options.get("trace_mqtt"))
    if trace_mqtt and sample == 0.0:
        raise ConfigError(
            "--trace-mqtt",
            "marks only the sampled share: give --trace-sample too, e.g. --trace-sample 1%",
        )
    envelope = options.get("trace_envelope") or None
    if envelope is not None and not re.fullmatch(r"[A-Za-z_][\w.-]{0,63}", envelope):
        raise ConfigError("--trace-envelope", f'expected a JSON field name, got "{envelope}"')
    if envelope is not None and not trace_mqtt:
        raise ConfigError(
            "--trace-envelope", "puts --trace-mqtt's traceparent in payloads: give both"
        )
    return TraceConfig(
        otlp_receiver=listen or None,
        trace_sample=sample,
        trace_mqtt=trace_mqtt,
        otlp_export=export or None,
        trace_envelope=envelope,
    )


def trace_environment(trace: TraceConfig) -> dict[str, str]:
    """The trace options as the variables a Locust run and its fleet read."""
    env = {"BARNSTORM_TRACE_SAMPLE": f"{trace.trace_sample * 100:g}%"}
    if trace.otlp_receiver:
        env["BARNSTORM_OTLP_RECEIVER"] = trace.otlp_receiver
    if trace.trace_mqtt:
        env["BARNSTORM_TRACE_MQTT"] = "1"
    if trace.trace_envelope:
        env["BARNSTORM_TRACE_ENVELOPE"] = trace.trace_envelope
    if trace.otlp_export:
        env["BARNSTORM_OTLP_EXPORT"] = trace.otlp_export
    return env


def check_trace_mqtt(trace: TraceConfig, mqtt_version: str | None) -> None:
    """``--trace-mqtt`` needs user properties: MQTT 5, or ``auto`` that may reach it."""
    if trace.trace_mqtt and mqtt_version == "3.1.1" and not trace.trace_envelope:
        raise ConfigError(
            "--trace-mqtt",
            "needs --mqtt-version 5 (or auto): MQTT 3.1.1 has no user properties, and barnstorm "
            "adds nothing to payloads unless asked (--trace-envelope FIELD)",
        )
