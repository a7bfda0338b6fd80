"""``simulate run``'s flags (and ``soak``'s) into the frozen configuration of a run:
:func:`build_run_config`, one builder per part of :mod:`simulator.runner.config` (fleet,
timing, target, MQTT, outputs, verdicts, traces), each error naming its flag."""

from __future__ import annotations

import os
import time
from typing import Any

from simulator.cli import options as opt
from simulator.cli.trace_options import check_trace_mqtt, trace_config
from simulator.engine.scenarios import load_scenario
from simulator.errors import ConfigError
from simulator.fleet.topics import check_topic_template
from simulator.metrics.sla import parse_slas
from simulator.runner.config import (
    FleetConfig,
    OutputConfig,
    RunConfig,
    TargetConfig,
    TimingConfig,
    VerdictConfig,
)
from simulator.transports.mqtt.settings import MqttSettings
from simulator.transports.readback import ReadBackTarget
from simulator.transports.tls import TlsFiles
from simulator.units import format_duration, iso_utc, parse_instant

#: processes of a history run (--output with --speed max) unless told otherwise: the same
#: on every machine, so the same seed writes the same file everywhere.
HISTORY_PROCESSES = 2

Options = dict[str, Any]


def build_run_config(options: Options) -> RunConfig:
    """Validate the run options into a :class:`RunConfig`; errors name the flag."""
    timing = _timing(options)
    target = _target(options)
    history = target.output is not None and timing.speed is None
    processes = _processes(options["processes"], options["farms"], history)
    if processes > 1 and options["stream_results"]:
        raise ConfigError(
            "--processes", "not with --stream-results: under Locust, use Locust's --processes"
        )
    if processes > 1 and options["prometheus"]:
        raise ConfigError("--processes", "not with --prometheus: give each process its own run")
    traces = trace_config(options)
    if processes > 1 and traces.otlp_receiver:
        raise ConfigError("--processes", "not with --otlp-receiver: one receiver takes one run")
    if target.http is None and target.output is None and not target.memory:
        check_trace_mqtt(traces, options["mqtt_version"])
    return RunConfig(
        fleet=_fleet(options),
        timing=timing,
        target=target,
        outputs=_outputs(options),
        verdicts=VerdictConfig(
            slas=parse_slas(options["sla"]),
            junit=opt.writable(options["junit"], "--junit"),
            allow_loss=options["allow_loss"],
            max_failed=opt.share(options["max_failed"], "--max-failed"),
        ),
        traces=traces,
        processes=processes,
    )


#: options that only an MQTT target (a broker, or the embedded default's) uses.
MQTT_ONLY = (
    "qos",
    "mqtt_version",
    "username",
    "password",
    "keepalive",
    "max_inflight",
    "client_id_prefix",
    "source_address",
    "topic_alias",
    "reconnect_backoff",
    "trace_mqtt",
)
#: options that only an HTTP ingest target uses.
HTTP_ONLY = ("http_batch", "http2", "http_client", "http_timeout", "token")


def ignored_options(config: RunConfig) -> dict[str, str]:
    """The options this run's target does not use, and the target."""
    target = config.target
    if target.output is not None:
        kind = "a history file (--output)"
    elif target.http is not None:
        kind = "an HTTP ingest (--http)"
    elif target.memory:
        kind = "memory"
    else:
        kind = "an MQTT broker"
    ignored = [] if kind == "an MQTT broker" else list(MQTT_ONLY)
    if target.http is None:
        ignored += HTTP_ONLY
    if target.output is not None or target.memory:
        ignored.append("otlp_receiver")  # no backend: no spans
    return {name: kind for name in ignored}


def _processes(asked: int | None, farms: int, history: bool) -> int:
    """Worker processes: as asked, or the default; never more than farms (a process runs
    whole farms) nor far more than this machine has cores."""
    if asked is None:
        return min(HISTORY_PROCESSES if history else 1, farms)
    most = 4 * (os.cpu_count() or 1)
    if asked > most:
        raise ConfigError(
            "--processes", f"{asked} processes on {os.cpu_count()} cores: give at most {most}"
        )
    if asked > farms:
        raise ConfigError(
            "--processes", f"{asked} processes for {farms} farm(s): a process runs whole farms"
        )
    return asked


def _fleet(options: Options) -> FleetConfig:
    device_types = None
    if options["device_types"]:
        device_types = tuple(t.strip() for t in options["device_types"].split(",") if t.strip())
        if not device_types:
            raise ConfigError("--device-types", "expected a comma-separated list of device types")
    kinds = None
    if options["kinds"]:
        kinds = tuple(k.strip() for k in options["kinds"].split(",") if k.strip())
        if not kinds:
            raise ConfigError("--kinds", "expected a comma-separated list of message kinds")
    return FleetConfig(
        farms=options["farms"],
        seed=options["seed"],
        farms_dir=options["farms_dir"],
        profiles_dir=options["profiles_dir"],
        device_types=device_types,
        kinds=kinds,
        topic_template=check_topic_template(options["topic_template"]),
        clean=options["clean"],
        credentials=options["credentials"],
        device_map=options["device_map"],
        shard=opt.shard(options["shard"]),
    )


#: the latest instant a message can carry (ISO 8601 has four digits for the year).
LATEST = parse_instant("9999-12-31T23:59:59Z")
#: the longest a run may take in real time: past it, a --speed is surely a slip.
MAX_WALL = 366 * 86400.0
#: the fastest ramp barnstorm paces (0 means all at once).
MAX_CONNECT_RATE = 1_000_000.0


def _timing(options: Options) -> TimingConfig:
    duration = opt.positive_duration(options["duration"], "--duration")
    speed = opt.speed(options["speed"])
    start = _start(options["start"])
    if start + duration > LATEST:
        raise ConfigError(
            "--duration",
            f"the run would end after {iso_utc(LATEST)}, the last instant a message can carry",
        )
    if speed is not None and duration / speed > MAX_WALL:
        raise ConfigError(
            "--speed",
            f"{format_duration(duration)} at speed {speed:g} would take "
            f"{format_duration(duration / speed)} of real time (at most a year): raise --speed "
            "or shorten --duration",
        )
    rate = options["connect_rate"]
    if not rate <= MAX_CONNECT_RATE:
        raise ConfigError(
            "--connect-rate", f"expected at most {MAX_CONNECT_RATE:,.0f} per second (0: at once)"
        )
    scenario = load_scenario(options["scenario"]) if options["scenario"] else None
    if scenario is not None:
        scenario.check_window(start, start + duration)
    return TimingConfig(
        start=start, duration=duration, speed=speed, connect_rate=rate or None, scenario=scenario
    )


def _start(text: str) -> float:
    """``--start``: now, or an instant from 1970 on."""
    if text == "now":
        return round(time.time(), 3)
    try:
        start = parse_instant(text)
    except (ValueError, OverflowError) as exc:
        raise ConfigError("--start", str(exc)) from None
    if start < 0:
        raise ConfigError("--start", f'expected an instant from 1970 on, got "{text}"')
    return start


def _target(options: Options) -> TargetConfig:
    for flag in ("ca_file", "cert_file", "key_file"):
        opt.readable(options[flag], f"--{flag.replace('_', '-')}")
    targets = [flag for flag in ("mqtt", "output", "http") if options[flag]]
    if len(targets) > 1:
        raise ConfigError(f"--{targets[1]}", f"give one target: --{targets[0]} or --{targets[1]}")
    connection = options["connection"]
    return TargetConfig(
        mqtt=_mqtt(options),
        output=opt.writable(options["output"], "--output"),
        http=opt.http_url(options["http"], "--http"),
        http_batch=options["http_batch"],
        http2=options["http2"],
        http_client=options["http_client"],
        http_timeout=opt.positive_duration(options["http_timeout"], "--http-timeout"),
        tls=TlsFiles(
            options["ca_file"], options["cert_file"], options["key_file"], options["insecure"]
        ),
        token=options["token"],
        readback=ReadBackTarget(
            opt.http_url(options["readback"], "--readback") or "", options["readback_token"]
        )
        if options["readback"]
        else None,
        embedded_broker=options["embedded_broker"],
        verify=_verify(options),
        per_gateway=None if connection is None else connection == "per-gateway",
    )


def _verify(options: Options) -> int:
    """``--verify``: the observer's connections (0: off). It judges a broker's delivery, so
    it needs one: an MQTT target or the embedded default."""
    if not options["verify"]:
        return 0
    if options["output"] or options["http"]:
        target = "--output" if options["output"] else "--http"
        raise ConfigError("--verify", f"checks delivery on an MQTT broker, not {target}")
    return int(options["verify_connections"])


def _mqtt(options: Options) -> MqttSettings | None:
    if not options["mqtt"]:
        on_embedded = not options["output"] and not options["http"]
        if on_embedded and (options["mqtt_version"] != "3.1.1" or options["qos"] != 1):
            raise ConfigError(
                "--qos", "the embedded broker runs MQTT 3.1.1 at QoS 1; give --mqtt to choose"
            )
        return None
    base, cap = opt.backoff(options["reconnect_backoff"])
    return MqttSettings.from_url(
        options["mqtt"],
        qos=options["qos"],
        version=options["mqtt_version"],
        username=options["username"],
        password=options["password"],
        ca_file=options["ca_file"],
        cert_file=options["cert_file"],
        key_file=options["key_file"],
        insecure=options["insecure"],
        keepalive=options["keepalive"],
        max_inflight=options["max_inflight"] or 0,
        client_id_prefix=options["client_id_prefix"],
        topic_alias=options["topic_alias"],
        source_addresses=tuple(options["source_address"]),
        reconnect_base=base,
        reconnect_cap=cap,
    )


def _outputs(options: Options) -> OutputConfig:
    return OutputConfig(
        report=opt.writable(options["report"], "--report"),
        html=opt.writable(options["html"], "--html"),
        csv=opt.writable(options["csv"], "--csv"),
        timeseries=opt.writable(options["timeseries"], "--timeseries"),
        snapshot_every=opt.optional_duration(options["snapshot_every"], "--snapshot-every"),
        prometheus=opt.prometheus(options["prometheus"]),
        live=not options["quiet"],
        stream_results=options["stream_results"],
    )
