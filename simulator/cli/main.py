"""The ``simulate`` command: options become a :class:`RunConfig`, then a run, then an exit code.

Every option can also come from an environment variable (``BARNSTORM_<OPTION>``, e.g.
``BARNSTORM_FARMS=500``) or a TOML file given with ``--config`` (keys are option names:
``farms = 500``, ``mqtt = "mqtt://broker:1883"``). The command line wins over the
environment, which wins over the file.

Bad input ends with one line on stderr naming the flag, file or key, and exit code 2.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from simulator import __version__
from simulator.engine.scenarios import load_scenario
from simulator.errors import BarnstormError, ConfigError
from simulator.exitcodes import EXIT_FAILED, EXIT_SLA, EXIT_USAGE
from simulator.fleet.build import DEFAULT_SEED
from simulator.fleet.credentials import load_credentials
from simulator.fleet.listing import fleet_csv, fleet_json
from simulator.fleet.load import load_fleet
from simulator.fleet.topics import DEFAULT_TOPIC_TEMPLATE, check_topic_template
from simulator.metrics.prometheus import parse_listen
from simulator.metrics.sla import parse_sla, parse_slas
from simulator.resources import shipped
from simulator.runner.config import RunConfig
from simulator.runner.main import run_blocking
from simulator.tomlfile import Table
from simulator.trace import RUN_ID_VARIABLE, current_run_id
from simulator.transports.mqtt.settings import MqttSettings
from simulator.transports.tls import TlsFiles
from simulator.units import parse_duration, parse_instant, parse_speed

F = TypeVar("F", bound=Callable[..., Any])
#: processes of a history run (--output with --speed max) unless told otherwise: the same
#: on every machine, so the same seed writes the same file everywhere.
HISTORY_PROCESSES = 2


def _load_config_file(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Eager ``--config``: the file's keys become the command's defaults."""
    if not value:
        return value
    table = Table.load(Path(value))
    known = {p.name for p in ctx.command.params if p.name}
    defaults: dict[str, Any] = {}
    for key in table:
        name = key.replace("-", "_")
        if name not in known or name == "config":
            raise table.error(key, f"not an option of `simulate {ctx.command.name}`")
        if name == "sla":
            defaults[name] = _config_slas(table)
            continue
        defaults[name] = table.raw(key)
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def _config_slas(table: Table) -> list[str]:
    """``[sla]`` with ``"ingest.p95" = "<250ms"`` entries, or ``sla = ["loss==0", ...]``."""
    raw = table.raw("sla")
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        texts = list(raw)
    elif isinstance(raw, dict):
        slas = table.table("sla")
        texts = [f"{key}{slas.string(key)}" for key in slas]
    else:
        raise table.error("sla", 'expected a table ("ingest.p95" = "<250ms") or a list of SLAs')
    for text in texts:
        parse_sla(text, f"{table.source}: sla")
    return texts


def option(*decls: str, **attrs: Any) -> Callable[[F], F]:
    """A click option that can also be set by ``BARNSTORM_<NAME>``."""
    name = decls[0].lstrip("-").replace("-", "_").upper()
    attrs.setdefault("envvar", f"BARNSTORM_{name}")
    attrs.setdefault("show_envvar", True)
    return click.option(*decls, **attrs)


def config_option(func: F) -> F:
    return click.option(
        "--config",
        type=click.Path(dir_okay=False),
        is_eager=True,
        expose_value=False,
        callback=_load_config_file,
        help="TOML file of option defaults (keys are option names).",
    )(func)


def sla_options(func: F) -> F:
    """``--sla`` (repeatable) and ``--junit``."""
    func = option(
        "--junit",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write the SLA verdicts as JUnit XML (one test case per SLA) for CI.",
    )(func)
    return option(
        "--sla",
        multiple=True,
        metavar="SLA",
        help='What the run must show, e.g. "ingest.p95<250ms", "dashboard.error_rate<1%", '
        '"loss==0", "ingest.rate>=2000/s" (repeatable; or an [sla] table in --config). '
        f"A broken SLA exits {EXIT_SLA}.",
    )(func)


def fleet_options(func: F) -> F:
    for decorator in reversed(
        [
            option(
                "--farms",
                type=click.IntRange(min=1),
                default=10,
                show_default=True,
                help="Number of farms in the fleet.",
            ),
            option(
                "--seed",
                type=int,
                default=DEFAULT_SEED,
                show_default=True,
                help="Seed of everything random: same seed, same fleet and same readings.",
            ),
            option(
                "--farms-dir",
                type=click.Path(file_okay=False, path_type=Path),
                help="Directory of farm templates (default: the shipped farms/).",
            ),
            option(
                "--profiles-dir",
                type=click.Path(file_okay=False, path_type=Path),
                help="Directory of device profiles (default: the shipped device_profiles/).",
            ),
            option(
                "--topic-template",
                default=DEFAULT_TOPIC_TEMPLATE,
                show_default=True,
                help="MQTT topic; placeholders {farm_id} {room_id} {device_type} {device_id} "
                "{kind} {site_id}.",
            ),
        ]
    ):
        func = decorator(func)
    return func


class DefaultGroup(click.Group):
    """``simulate --farms 5`` means ``simulate run --farms 5``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (
            args[0] not in self.commands and args[0] not in ("--help", "-h", "--version")
        ):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="barnstorm")
def main_group() -> None:
    """barnstorm: virtual farms that stress-test a livestock-monitoring backend.

    With no target, `simulate --farms 500` starts an embedded MQTT broker and the reference
    backend on 127.0.0.1, publishes the fleet's telemetry, and checks that the backend
    stored every message. Point it at your own broker with --mqtt or ingest URL with
    --http, or write history with --output.
    """


@main_group.command("run")
@config_option
@fleet_options
@option(
    "--duration",
    default="60s",
    show_default=True,
    help='Simulated time to run: "90s", "30m", "8h", "365d". Real time is duration / speed.',
)
@option(
    "--speed",
    default="1",
    show_default=True,
    help='Simulated seconds per real second ("60": an hour a minute), or "max".',
)
@option(
    "--start",
    default="now",
    show_default=True,
    help='Simulated start, ISO 8601 ("2026-01-01", "2026-01-01T06:00:00Z") or "now".',
)
@option(
    "--mqtt", metavar="URL", help="Broker to publish to: mqtt://host:1883 or mqtts://host:8883."
)
@option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every message as a JSON line to FILE instead of publishing.",
)
@option(
    "--http",
    metavar="URL",
    help="Ingest URL to POST the payloads to (e.g. http://127.0.0.1:8080/ingest).",
)
@option(
    "--http-timeout",
    default="10s",
    show_default=True,
    help="How long an HTTP ingest request may take before it counts as a timeout.",
)
@option(
    "--http-batch",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Messages per request, batched per site gateway.",
)
@option("--http2", is_flag=True, help="Use HTTP/2 for --http.")
@option("--token", help="Bearer token for --http (prefer BARNSTORM_TOKEN).")
@option(
    "--stream-results",
    is_flag=True,
    help="Write every result as JSON lines on stdout (for the Locust bridge).",
)
@option("--shard", metavar="I/N", help="Run only part I of N of the fleet (split by farm).")
@option(
    "--credentials",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Per-device credentials: a CSV of device_id and username,password or token.",
)
@option(
    "--readback",
    metavar="URL",
    help="After the run, reconcile against what the target stored (the reference "
    "backend's /api/readback).",
)
@option("--qos", type=click.IntRange(0, 2), default=1, show_default=True, help="MQTT QoS.")
@option("--mqtt-version", type=click.Choice(["3.1.1", "5"]), default="3.1.1", show_default=True)
@option("--username", help="MQTT user name.")
@option("--password", help="MQTT password (prefer BARNSTORM_PASSWORD).", show_default=False)
@option(
    "--ca-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CA bundle for mqtts:// and https:// targets.",
)
@option(
    "--cert-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Client certificate (mTLS).",
)
@option("--key-file", type=click.Path(dir_okay=False, path_type=Path), help="Client key (mTLS).")
@option("--insecure", is_flag=True, help="Do not verify the target's TLS certificate.")
@option(
    "--reconnect-backoff",
    default="1s,60s",
    show_default=True,
    metavar="BASE,CAP",
    help="After a lost connection a device waits a random time in [0, min(CAP, BASE * 2^n)] "
    "before its n-th retry (exponential backoff, full jitter).",
)
@option(
    "--mqtt-client",
    type=click.Choice(["auto", "lean", "gmqtt"]),
    default="auto",
    show_default=True,
    help="MQTT publish path: barnstorm's own lean client (MQTT 3.1.1; what auto picks) or "
    "gmqtt (what auto picks for MQTT 5).",
)
@option(
    "--source-address",
    multiple=True,
    metavar="ADDR",
    help="Local address MQTT connections leave from, in turn (repeatable: one address "
    "runs out of ports near 28,000 connections).",
)
@option(
    "--keepalive",
    type=click.IntRange(min=5),
    default=60,
    show_default=True,
    help="MQTT keepalive, seconds.",
)
@option(
    "--connection",
    type=click.Choice(["per-device", "per-gateway"]),
    help="One MQTT connection per device (default with --mqtt) or per site gateway "
    "(default on the embedded broker).",
)
@option(
    "--connect-rate",
    type=click.FloatRange(min=0),
    default=500.0,
    show_default=True,
    help="New connections per second during the ramp (0: all at once).",
)
@option("--device-types", metavar="LIST", help="Only these device types, comma-separated.")
@option(
    "--embedded-broker",
    type=click.Choice(["auto", "mosquitto", "amqtt"]),
    default="auto",
    show_default=True,
    help="Broker of the default run: mosquitto if on PATH, else amqtt.",
)
@option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the JSON report to FILE.",
)
@option(
    "--scenario",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Events to play (outbreak, heatwave, outage...): a TOML file, see scenarios/.",
)
@option(
    "--clean",
    is_flag=True,
    help="No fleet imperfections: no jitter, clock drift, duplicates, spikes, stuck "
    "sensors, missing fields or firmware payload differences.",
)
@option(
    "--processes",
    type=click.IntRange(min=1),
    help="Worker processes for history (--output with --speed max), split by farm; "
    "default 2 for history (each half of the fleet in time order, one after the other), "
    "1 otherwise. --processes 1 writes one time-ordered file.",
)
@option("--allow-loss", is_flag=True, help="Exit 0 even when messages were lost.")
@sla_options
@option(
    "--html",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a self-contained HTML report (verdicts, plots over time, tables) to FILE.",
)
@option(
    "--csv",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PREFIX",
    help="Also write PREFIX_by_type.csv and PREFIX_timeseries.csv.",
)
@option(
    "--timeseries",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a row of measures every --snapshot-every to FILE (JSON lines) as the run goes.",
)
@option(
    "--snapshot-every",
    metavar="DURATION",
    help="Simulated time between time-series rows (default: about 300 rows over the run).",
)
@option(
    "--prometheus",
    metavar="[HOST]:PORT",
    help="Serve the simulator's metrics for Prometheus at /metrics while the run lasts "
    "(e.g. :9464; binds 127.0.0.1 unless a host is given).",
)
@option("--quiet", is_flag=True, help="No live progress view.")
def run_command(**options: Any) -> None:
    """Run the fleet against a target and report what happened."""
    config = build_run_config(options)
    result = run_blocking(config)
    if result.report["error"]:
        click.echo(f"simulate: error: {_one_line(result.report['error'])}", err=True)
    sys.exit(result.exit_code)


SOAK_DEFAULTS: dict[str, Any] = {
    "duration": "8h",
    "snapshot_every": "1m",
    "timeseries": Path("soak-timeseries.jsonl"),
    "html": Path("soak-report.html"),
    "report": Path("soak-report.json"),
}


def _soak_command() -> click.Command:
    """``simulate soak``: ``run`` with a soak's defaults (its options, other defaults)."""
    params = []
    for param in run_command.params:
        clone = copy.copy(param)
        if clone.name in SOAK_DEFAULTS:
            clone.default = SOAK_DEFAULTS[clone.name]
        params.append(clone)
    return click.Command(
        "soak",
        params=params,
        callback=run_command.callback,
        help="Run the fleet for hours and watch it drift: a time-series row every "
        "--snapshot-every (1m) to --timeseries, trends of latency, errors, throughput, loss "
        "and the simulator's own CPU and memory, flagged when they drift, in the report "
        "and the HTML report. Takes every option of `simulate run`.",
    )


main_group.add_command(_soak_command())


def build_run_config(options: dict[str, Any]) -> RunConfig:
    """Validate the run options into a :class:`RunConfig`; errors name the flag."""
    duration = _positive_duration(options["duration"], "--duration")
    try:
        speed = parse_speed(str(options["speed"]))
    except ValueError as exc:
        raise ConfigError("--speed", str(exc)) from None
    if options["start"] == "now":
        start = round(time.time(), 3)
    else:
        try:
            start = parse_instant(options["start"])
        except ValueError as exc:
            raise ConfigError("--start", str(exc)) from None
    for flag in ("ca_file", "cert_file", "key_file"):
        path = options[flag]
        if path is not None and not path.is_file():
            raise ConfigError(f"--{flag.replace('_', '-')}", f"{path} is not a readable file")
    targets = [flag for flag in ("mqtt", "output", "http") if options[flag]]
    if len(targets) > 1:
        raise ConfigError(f"--{targets[1]}", f"give one target: --{targets[0]} or --{targets[1]}")
    mqtt = None
    if options["mqtt"]:
        mqtt = MqttSettings.from_url(
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
            client=options["mqtt_client"],
            source_addresses=tuple(options["source_address"]),
            **_backoff(options["reconnect_backoff"]),
        )
    elif (
        not options["output"]
        and not options["http"]
        and (options["mqtt_version"] != "3.1.1" or options["qos"] != 1)
    ):
        raise ConfigError(
            "--qos", "the embedded broker runs MQTT 3.1.1 at QoS 1; give --mqtt to choose"
        )
    device_types = None
    if options["device_types"]:
        device_types = tuple(t.strip() for t in options["device_types"].split(",") if t.strip())
        if not device_types:
            raise ConfigError("--device-types", "expected a comma-separated list of device types")
    report = _writable(options["report"], "--report")
    output = _writable(options["output"], "--output")
    connection = options["connection"]
    history = output is not None and speed is None
    processes = options["processes"] or (HISTORY_PROCESSES if history else 1)
    if processes > 1 and not history:
        raise ConfigError("--processes", "works for history only: give --output and --speed max")
    return RunConfig(
        farms=options["farms"],
        seed=options["seed"],
        start=start,
        duration=duration,
        speed=speed,
        mqtt=mqtt,
        output=output,
        embedded_broker=options["embedded_broker"],
        per_gateway=None if connection is None else connection == "per-gateway",
        connect_rate=options["connect_rate"] or None,
        device_types=device_types,
        topic_template=check_topic_template(options["topic_template"]),
        report=report,
        farms_dir=options["farms_dir"],
        profiles_dir=options["profiles_dir"],
        live=not options["quiet"],
        allow_loss=options["allow_loss"],
        scenario=load_scenario(options["scenario"]) if options["scenario"] else None,
        clean=options["clean"],
        processes=processes,
        http=options["http"],
        http_batch=options["http_batch"],
        http2=options["http2"],
        http_timeout=_positive_duration(options["http_timeout"], "--http-timeout"),
        tls=TlsFiles(
            options["ca_file"], options["cert_file"], options["key_file"], options["insecure"]
        ),
        token=options["token"],
        readback=options["readback"],
        credentials=options["credentials"],
        stream_results=options["stream_results"],
        shard=_shard(options["shard"]),
        slas=parse_slas(options["sla"]),
        junit=_writable(options["junit"], "--junit"),
        html=_writable(options["html"], "--html"),
        csv=_writable(options["csv"], "--csv"),
        timeseries=_writable(options["timeseries"], "--timeseries"),
        snapshot_every=_snapshot_every(options["snapshot_every"]),
        prometheus=_prometheus(options["prometheus"]),
    )


def _positive_duration(text: str, flag: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise ConfigError(flag, str(exc)) from None
    if seconds <= 0:
        raise ConfigError(flag, f'"{text}" is not a positive duration')
    return seconds


def _backoff(text: str) -> dict[str, float]:
    try:
        base, cap = (parse_duration(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(
            "--reconnect-backoff", f'expected BASE,CAP such as "1s,60s", got "{text}"'
        ) from None
    if not 0 < base <= cap:
        raise ConfigError("--reconnect-backoff", f'expected 0 < BASE <= CAP, got "{text}"')
    return {"reconnect_base": base, "reconnect_cap": cap}


def _writable(path: Path | None, flag: str) -> Path | None:
    if path is not None and not path.parent.resolve().is_dir():
        raise ConfigError(flag, f"directory {path.parent} does not exist")
    return path


def _snapshot_every(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise ConfigError("--snapshot-every", str(exc)) from None
    if seconds <= 0:
        raise ConfigError("--snapshot-every", "expected a duration above zero")
    return seconds


def _prometheus(text: str | None) -> str | None:
    if text is not None:
        parse_listen(text)
    return text


def _shard(text: str | None) -> tuple[int, int]:
    if not text:
        return (0, 1)
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError("--shard", f'expected I/N such as "0/4", got "{text}"') from None
    if not 0 <= index < count:
        raise ConfigError("--shard", f'expected 0 <= I < N, got "{text}"')
    return (index, count)


@main_group.command("fleet")
@config_option
@fleet_options
@option(
    "--format",
    "fmt",
    type=click.Choice(["json", "csv"]),
    default="json",
    show_default=True,
    envvar="BARNSTORM_FORMAT",
)
@option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to FILE instead of standard output.",
)
def fleet_command(
    farms: int,
    seed: int,
    farms_dir: Path | None,
    profiles_dir: Path | None,
    topic_template: str,
    fmt: str,
    output: Path | None,
) -> None:
    """Print the fleet (farms, sites, rooms, devices, topics) as JSON or CSV."""
    check_topic_template(topic_template)
    fleet, profiles = load_fleet(farms, seed, farms_dir, profiles_dir)
    render = fleet_json if fmt == "json" else fleet_csv
    text = render(fleet, profiles, topic_template)
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        try:
            output.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        except OSError as exc:
            raise ConfigError("--output", f"cannot write {output}: {exc.strerror or exc}") from None


@main_group.command("serve")
@config_option
@option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@option(
    "--database",
    default="barnstorm-backend.db",
    show_default=True,
    help="SQLite file, or a postgresql://user@host/db URL.",
)
@option("--mqtt", metavar="URL", help="Also ingest from this broker.")
@option("--topic", default="barnstorm/#", show_default=True, help="MQTT topic filter to ingest.")
@option(
    "--device-credentials",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Require device authentication on /ingest (CSV: device_id and username,password "
    "or token, as for simulate --credentials).",
)
@option(
    "--slow", is_flag=True, help="Turn on a realistic bottleneck (room detail: a query per device)."
)
@option(
    "--farms",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Fleet whose farm names the dashboards show.",
)
@option("--seed", type=int, default=DEFAULT_SEED, show_default=True)
@option(
    "--access-log",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append one JSON line per request (method, path, status, time, trace headers).",
)
def serve_command(
    host: str,
    port: int,
    database: str,
    mqtt: str | None,
    topic: str,
    slow: bool,
    farms: int,
    seed: int,
    device_credentials: Path | None,
    access_log: Path | None,
) -> None:
    """Run the reference backend: HTTP and MQTT ingest, dashboard API and pages
    (/dashboard/farms), read-back."""
    import uvicorn

    from simulator.backend.app import create_app

    fleet, _ = load_fleet(farms, seed, None, None)
    settings = MqttSettings.from_url(mqtt) if mqtt else None
    accepted = None
    if device_credentials is not None:
        by_device = load_credentials(device_credentials, fleet.devices.ids)
        accepted = {c.http_header(): fleet.devices.ids[i] for i, c in by_device.items()}
    app = create_app(
        database,
        fleet,
        slow=slow,
        mqtt=settings,
        mqtt_topic=topic,
        device_credentials=accepted,
        access_log=access_log,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")


@main_group.command(
    "mixed",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@option("--farms", type=click.IntRange(min=1), default=10, show_default=True)
@option(
    "--users",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Dashboard users (Locust).",
)
@option(
    "--spawn-rate",
    type=click.FloatRange(min=0.01),
    default=1.0,
    show_default=True,
    help="Users started per second.",
)
@option("--run-time", default="1m", show_default=True, help="How long Locust runs (e.g. 30m).")
@option("--host", required=True, help="Base URL of the dashboards (e.g. http://127.0.0.1:8080).")
@option("--web-ui", is_flag=True, help="Run with Locust's web UI instead of headless.")
@option("--mqtt", metavar="URL", help="Broker the devices publish to (mqtt://host:1883).")
@option("--http", metavar="URL", help="Ingest URL the devices POST to, instead of --mqtt.")
@option("--speed", default="1", show_default=True, help="Simulated seconds per real second.")
@option("--seed", type=int, default=DEFAULT_SEED, show_default=True)
@sla_options
@option(
    "--html",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write barnstorm's report of both kinds of load (verdicts, ingest beside dashboards "
    "over time, users, devices) to FILE. Locust's own: --locust-html FILE.",
)
@option(
    "--locust-html",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write Locust's own HTML report to FILE.",
)
@click.pass_context
def mixed_command(
    ctx: click.Context,
    farms: int,
    users: int,
    spawn_rate: float,
    run_time: str,
    host: str,
    web_ui: bool,
    mqtt: str | None,
    http: str | None,
    speed: str,
    seed: int,
    sla: tuple[str, ...],
    junit: Path | None,
    html: Path | None,
    locust_html: Path | None,
) -> None:
    """Devices and dashboard users in one Locust run (locustfiles/mixed.py).

    The fleet also takes the other BARNSTORM_* variables of simulate run
    (BARNSTORM_CONNECT_RATE, BARNSTORM_TOPIC_TEMPLATE ...). Further arguments go to Locust:
    --json, --csv, --html for reports, --processes N for N workers on this machine (each
    runs its share of the farms).
    """
    import json
    import os
    import subprocess

    try:
        parse_duration(run_time)
    except ValueError as exc:
        raise ConfigError("--run-time", str(exc)) from None
    locustfile = shipped("locustfiles") / "mixed.py"
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--host",
        host,
        "-u",
        str(users),
        "-r",
        str(spawn_rate),
        "-t",
        run_time,
    ]
    if not web_ui:
        command.append("--headless")
    if locust_html is not None:
        command += ["--html", str(_writable(locust_html, "--locust-html"))]
    command += ctx.args
    if mqtt and http:
        raise ConfigError("--http", "give one target: --mqtt or --http")
    try:
        parse_speed(speed)
    except ValueError as exc:
        raise ConfigError("--speed", str(exc)) from None
    env = {
        **os.environ,
        "BARNSTORM_FARMS": str(farms),
        "BARNSTORM_SEED": str(seed),
        "BARNSTORM_SPEED": speed,
        RUN_ID_VARIABLE: current_run_id(),
    }
    if mqtt:
        env["BARNSTORM_MQTT"] = mqtt
    if http:
        env["BARNSTORM_HTTP"] = http
    # The SLAs are judged by Locust over both kinds of load, not by the fleet alone.
    env.pop("BARNSTORM_SLA", None)
    env.pop("BARNSTORM_JUNIT", None)
    parse_slas(sla)  # bad input fails here, before Locust starts
    env["BARNSTORM_LOCUST_SLAS"] = json.dumps(list(sla))
    if junit is not None:
        env["BARNSTORM_LOCUST_JUNIT"] = str(junit.resolve())
    env.pop("BARNSTORM_HTML", None)
    if html is not None:
        _writable(html, "--html")
        env["BARNSTORM_LOCUST_HTML"] = str(html.resolve())
    sys.exit(subprocess.call(command, env=env))


@main_group.command(
    "capacity",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@config_option
@option("--host", required=True, help="Base URL of the dashboards (e.g. http://127.0.0.1:8080).")
@option(
    "--users", type=click.IntRange(min=0), default=0, show_default=True, help="Users at step 1."
)
@option(
    "--users-step",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Users added per step.",
)
@option("--spawn-rate", type=click.FloatRange(min=0.01), default=10.0, show_default=True)
@option(
    "--farms",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="The fleet the users browse; with --mqtt or --http its devices run too, a constant "
    "load (with --users-step: find the user limit).",
)
@option(
    "--farms-step",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Farms added per step (step k runs k times this many).",
)
@option("--steps", type=click.IntRange(min=1), default=8, show_default=True, help="The ceiling.")
@option("--step", "step_time", default="2m", show_default=True, help="Duration of each step.")
@option("--warmup", default="30s", show_default=True, help="Start of each step not judged.")
@option("--mqtt", metavar="URL", help="Broker the devices publish to.")
@option("--http", metavar="URL", help="Ingest URL the devices POST to, instead of --mqtt.")
@option("--speed", default="1", show_default=True, help="Simulated seconds per real second.")
@option("--seed", type=int, default=DEFAULT_SEED, show_default=True)
@option(
    "--sla",
    multiple=True,
    required=True,
    metavar="SLA",
    help='What each step must show, e.g. "dashboard.p95<500ms" (repeatable).',
)
@option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every step's measures and verdicts as JSON to FILE.",
)
@click.pass_context
def capacity_command(ctx: click.Context, /, **options: Any) -> None:
    """Find the load where the SLAs break: raise users (Locust) and farms (devices) in steps
    of fixed duration, judge each step after its warm-up, stop at the first that breaks.

    Exits 0 with the last load that held, 3 if even the first step broke. Further
    arguments go to Locust (--html, --csv ...).
    """
    from simulator.runner.capacity import run_capacity

    sys.exit(run_capacity(options, list(ctx.args)))


@main_group.command("har2map")
@click.argument("recording", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the map here (default: standard output).",
)
@click.option(
    "--gap",
    type=click.FloatRange(min=0.0),
    default=1.0,
    show_default=True,
    help="In a single-page app, a pause (seconds) that starts a new view.",
)
def har2map_command(recording: Path, output: Path | None, gap: float) -> None:
    """Turn a browser recording (HAR, e.g. Chrome DevTools' "Export HAR") into a dashboard
    map for the Locust users (BARNSTORM_DASHBOARD_MAP)."""
    import tempfile

    from simulator.locust.dashboard_map import load_map
    from simulator.locust.har import build_map, render

    draft = build_map(recording, gap)
    text = render(draft, str(recording))
    with tempfile.TemporaryDirectory() as folder:  # the map must load as users will load it
        check = Path(folder) / "map.toml"
        check.write_text(text, encoding="utf-8")
        loaded = load_map(check)
    for warning in draft.warnings:
        click.echo(f"simulate har2map: {warning}", err=True)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        requests = sum(len(v.requests) for v in loaded.views)
        click.echo(
            f"simulate har2map: wrote {output}: {len(loaded.views)} views, {requests} requests"
            + (", a login step" if loaded.login else ", no login step"),
            err=True,
        )


def _one_line(message: str) -> str:
    return " ".join(message.split())


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``simulate`` console script."""
    try:
        main_group.main(
            args=list(argv) if argv is not None else None,
            prog_name="simulate",
            standalone_mode=False,
        )
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        sys.exit(0)
    except click.UsageError as exc:
        hint = (
            f" (see simulate {exc.ctx.command.name} --help)"
            if exc.ctx and exc.ctx.command.name
            else ""
        )
        click.echo(f"simulate: error: {_one_line(exc.format_message())}{hint}", err=True)
        sys.exit(EXIT_USAGE)
    except ConfigError as exc:
        click.echo(f"simulate: error: {_one_line(str(exc))}", err=True)
        sys.exit(EXIT_USAGE)
    except BarnstormError as exc:
        click.echo(f"simulate: error: {_one_line(str(exc))}", err=True)
        sys.exit(EXIT_FAILED)
    except click.exceptions.Abort:
        click.echo("simulate: aborted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
