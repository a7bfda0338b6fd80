"""``simulate mixed`` and ``simulate capacity``: devices and dashboard users in one Locust
run. Both start Locust as a child process on a shipped locustfile; the fleet reaches the
Locust side through ``BARNSTORM_*`` variables, and arguments this command does not know go
to Locust as they are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from simulator.cli import options as opt
from simulator.cli.compare import judge_against, load_report, print_comparison
from simulator.cli.options import config_option, option, sla_options
from simulator.cli.trace_options import (
    check_trace_mqtt,
    trace_config,
    trace_environment,
    trace_options,
)
from simulator.errors import ConfigError
from simulator.exitcodes import EXIT_FAILURES, EXIT_OK, EXIT_SLA
from simulator.fleet.load import load_fleet
from simulator.locust.dashboard_map import load_map
from simulator.locust.map_check import check_map
from simulator.locust.map_fleet import MapFleet
from simulator.metrics.regression import parse_rules
from simulator.metrics.sla import parse_slas
from simulator.resources import shipped
from simulator.traces.context import RUN_ID_VARIABLE, current_run_id
from simulator.units import parse_duration

_PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True}
_PATH = click.Path(dir_okay=False, path_type=Path)


@click.command("mixed", context_settings=_PASS_THROUGH)
@opt.farms_option()
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
@opt.dashboards_option()
@option("--web-ui", is_flag=True, help="Run with Locust's web UI instead of headless.")
@option(
    "--no-map-check",
    "map_check",
    is_flag=True,
    flag_value=False,
    default=True,
    help="Skip the look before the load: log in once and open the map's listings, so that "
    "a login refused or an extract path matching nothing stops the run at once.",
)
@opt.mqtt_option("Broker the devices publish to (mqtt://host:1883).")
@opt.http_option("Ingest URL the devices POST to, instead of --mqtt.")
@opt.speed_option()
@opt.seed_option()
@sla_options
@option(
    "--html",
    type=_PATH,
    help="Write barnstorm's report of both kinds of load (verdicts, ingest beside dashboards "
    "over time, users, devices) to FILE. Locust's own: --locust-html FILE.",
)
@option("--locust-html", type=_PATH, help="Write Locust's own HTML report to FILE.")
@option(
    "--report",
    type=_PATH,
    help="Write barnstorm's JSON report of the run (per request name and device type: "
    "latency, errors, rate, the backend's Server-Timing; the verdicts) to FILE.",
)
@option(
    "--baseline",
    type=_PATH,
    help="A report of an earlier run: judge this run against it by the regression rules "
    "(--rule); exit 3 when one breaks.",
)
@option("--rule", "rules", multiple=True, metavar="RULE", help="A regression rule (repeatable).")
@option(
    "--max-failed",
    default="1%",
    show_default=True,
    metavar="PERCENT",
    help="Share of the dashboard requests, and of the device messages, that may fail "
    f"before the run exits {EXIT_FAILURES}: one reset among hundreds of requests is no "
    "failed run (Locust alone exits 1 on any failure); 100% never fails the run for it.",
)
@trace_options
@click.pass_context
def mixed_command(
    ctx: click.Context,
    farms: int,
    users: int,
    spawn_rate: float,
    run_time: str,
    host: str,
    web_ui: bool,
    map_check: bool,
    mqtt: str | None,
    http: str | None,
    speed: str,
    seed: int,
    sla: tuple[str, ...],
    junit: Path | None,
    html: Path | None,
    locust_html: Path | None,
    report: Path | None,
    baseline: Path | None,
    rules: tuple[str, ...],
    max_failed: str,
    otlp_receiver: str | None,
    trace_sample: str | None,
    otlp_export: str | None,
    trace_mqtt: bool,
    trace_envelope: str | None,
) -> None:
    """Devices and dashboard users in one Locust run (locustfiles/mixed.py).

    The fleet also takes the other BARNSTORM_* variables of simulate run
    (BARNSTORM_CONNECT_RATE, BARNSTORM_TOPIC_TEMPLATE ...). Further arguments go to Locust:
    --json, --csv, --html for reports, --processes N for N workers on this machine (each
    runs its share of the farms).
    """
    try:
        parse_duration(run_time)
    except ValueError as exc:
        raise ConfigError("--run-time", str(exc)) from None
    if mqtt and http:
        raise ConfigError("--http", "give one target: --mqtt or --http")
    opt.http_url(host, "--host")
    opt.http_url(http, "--http")
    opt.speed(speed)
    opt.share(max_failed, "--max-failed")
    parse_slas(sla)  # bad input fails here, before Locust starts
    traces = trace_config(
        {
            "otlp_receiver": otlp_receiver,
            "trace_sample": trace_sample,
            "trace_mqtt": trace_mqtt,
            "otlp_export": otlp_export,
            "trace_envelope": trace_envelope,
        }
    )
    if not http:
        check_trace_mqtt(traces, os.environ.get("BARNSTORM_MQTT_VERSION"))
    dashboard_map = os.environ.get("BARNSTORM_DASHBOARD_MAP")
    dashboard = load_map(Path(dashboard_map) if dashboard_map else None)  # its {env:...}, too
    device_map = os.environ.get("BARNSTORM_DEVICE_MAP")
    if device_map:  # the users and the fleet bind it alike: a bad one fails here, once
        try:
            load_fleet(farms, seed, None, None, device_map=Path(device_map))
        except ConfigError as exc:
            where = "BARNSTORM_DEVICE_MAP" if exc.where == "--device-map" else exc.where
            raise ConfigError(where, exc.problem) from None
    if users > 0 and map_check:
        fleet = MapFleet(farms, seed, Path(device_map) if device_map else None)
        check_map(dashboard, host, fleet)
    if not mqtt and not http:
        click.echo(
            "simulate mixed: no --mqtt or --http: the devices publish to an embedded broker "
            f"and reference backend of their own, not to {host}; give --mqtt or --http to "
            "load your backend's ingest",
            err=True,
        )
    command = [
        *(sys.executable, "-m", "locust", "-f", str(shipped("locustfiles") / "mixed.py")),
        *("--host", host, "-u", str(users), "-r", str(spawn_rate), "-t", run_time),
    ]
    if not web_ui:
        command.append("--headless")
    if locust_html is not None:
        command += ["--html", str(opt.writable(locust_html, "--locust-html"))]
    command += ctx.args
    env = _fleet_environment(farms=farms, seed=seed, speed=speed, mqtt=mqtt, http=http)
    env.update(_verdict_environment(sla, junit, html))
    env["BARNSTORM_MAX_FAILED"] = max_failed
    env.update(trace_environment(traces))
    parse_rules(rules)
    if baseline is not None:
        load_report(baseline, "--baseline")  # bad input fails now, not after the run
    with tempfile.TemporaryDirectory() as folder:
        if report is None and baseline is not None:
            report = Path(folder) / "report.json"  # the run's own, to judge it
        if report is not None:
            opt.writable(report, "--report")
            env["BARNSTORM_LOCUST_REPORT"] = str(report.resolve())
        code = subprocess.call(command, env=env)
        if baseline is not None and report is not None:
            if not report.exists():
                raise ConfigError("--baseline", "the run wrote no report to judge")
            result = judge_against(baseline, load_report(report, "--report"), rules)
            print_comparison(result)
            if result.regressed and code == EXIT_OK:
                code = EXIT_SLA
    sys.exit(code)


def _fleet_environment(
    *, farms: int, seed: int, speed: str, mqtt: str | None, http: str | None
) -> dict[str, str]:
    """The environment of Locust's process: the fleet's settings for its child run."""
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
    # The SLAs and reports are Locust's, over both kinds of load, not the fleet's alone.
    for name in ("BARNSTORM_SLA", "BARNSTORM_JUNIT", "BARNSTORM_HTML"):
        env.pop(name, None)
    return env


def _verdict_environment(
    sla: tuple[str, ...], junit: Path | None, html: Path | None
) -> dict[str, str]:
    env = {"BARNSTORM_LOCUST_SLAS": json.dumps(list(sla))}
    if junit is not None:
        env["BARNSTORM_LOCUST_JUNIT"] = str(junit.resolve())
    if html is not None:
        opt.writable(html, "--html")
        env["BARNSTORM_LOCUST_HTML"] = str(html.resolve())
    return env


@click.command("capacity", context_settings=_PASS_THROUGH)
@config_option
@opt.dashboards_option()
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
@opt.farms_option(
    default=0,
    minimum=0,
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
@opt.mqtt_option("Broker the devices publish to.")
@opt.http_option("Ingest URL the devices POST to, instead of --mqtt.")
@opt.speed_option()
@opt.seed_option()
@option(
    "--sla",
    multiple=True,
    required=True,
    metavar="SLA",
    help='What each step must show, e.g. "dashboard.p95<500ms" (repeatable).',
)
@option("--report", type=_PATH, help="Write every step's measures and verdicts as JSON to FILE.")
@click.pass_context
def capacity_command(ctx: click.Context, /, **options: Any) -> None:
    """Find the load where the SLAs break: raise users (Locust) and farms (devices) in steps
    of fixed duration, judge each step after its warm-up, stop at the first that breaks.

    Exits 0 with the last load that held, 3 if even the first step broke. Further
    arguments go to Locust (--html, --csv ...).
    """
    from simulator.runner.capacity import run_capacity

    opt.http_url(options["host"], "--host")
    opt.http_url(options["http"], "--http")
    sys.exit(run_capacity(options, list(ctx.args)))
