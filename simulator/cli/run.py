"""``simulate run`` and ``simulate soak``: the fleet against a target, then a report.

The options come in groups, one per part of the run's configuration (fleet, timing,
target, MQTT, outputs, verdicts, traces); :mod:`simulator.cli.run_config` turns them into
the frozen configs of :mod:`simulator.runner.config`, one builder per part.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import click

from simulator.cli import options as opt
from simulator.cli.compare import judge_against, load_report, print_comparison
from simulator.cli.options import option, stacked
from simulator.cli.run_config import build_run_config, ignored_options
from simulator.cli.trace_options import trace_options
from simulator.errors import ConfigError
from simulator.exitcodes import EXIT_FAILURES, EXIT_OK, EXIT_SLA
from simulator.metrics.regression import DEFAULT_RULES, parse_rules
from simulator.report.files import write_report
from simulator.runner.estimate import check_size
from simulator.runner.main import run_blocking
from simulator.transports.http_names import HTTP_CLIENTS

_PATH = click.Path(dir_okay=False, path_type=Path)

timing_options = stacked(
    option(
        "--duration",
        default="60s",
        show_default=True,
        help='Simulated time to run: "90s", "30m", "8h", "365d". Real time is duration / speed.',
    ),
    opt.speed_option(),
    option(
        "--start",
        default="now",
        show_default=True,
        help='Simulated start, ISO 8601 ("2026-01-01", "2026-01-01T06:00:00Z") or "now".',
    ),
)

target_options = stacked(
    opt.mqtt_option("Broker to publish to: mqtt://host:1883 or mqtts://host:8883."),
    option("--output", type=_PATH, help="Write every message as a JSON line to FILE instead."),
    opt.http_option("Ingest URL to POST the payloads to (e.g. http://127.0.0.1:8080/ingest)."),
    option(
        "--http-timeout",
        default="10s",
        show_default=True,
        help="How long an HTTP ingest request may take before it counts as a timeout.",
    ),
    option(
        "--http-batch",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Messages per request, batched per site gateway.",
    ),
    option("--http2", is_flag=True, help="Use HTTP/2 for --http (over httpx)."),
    option(
        "--http-client",
        type=click.Choice(HTTP_CLIENTS),
        default="auto",
        show_default=True,
        help="HTTP client for --http: aiohttp (what auto picks for HTTP/1.1) or httpx (what "
        "auto picks for --http2).",
    ),
    option("--token", help="Bearer token for --http (prefer BARNSTORM_TOKEN)."),
    option(
        "--stream-results",
        is_flag=True,
        help="Write every result as JSON lines on stdout (for the Locust bridge).",
    ),
    option("--shard", metavar="I/N", help="Run only part I of N of the fleet (split by farm)."),
    option(
        "--credentials",
        type=_PATH,
        help="Per-device credentials: a CSV of device_id and username,password or token.",
    ),
    option(
        "--device-map",
        type=_PATH,
        help="The product's provisioned devices: a CSV of device_id (and type, farm_id, "
        "room_id). Simulated devices take these IDs; the rest are left out, never sent "
        "under invented IDs.",
    ),
    option(
        "--readback",
        metavar="URL",
        help="After the run, reconcile against what the target stored (the reference "
        "backend's /api/readback).",
    ),
    option(
        "--verify",
        is_flag=True,
        help="Check delivery on the broker: an independent subscriber (its own process and "
        "connections) receives what the run publishes, and the run reconciles per device "
        "and seq: acknowledged but never delivered (exit 4), delivered twice, out of order.",
    ),
    option(
        "--verify-connections",
        type=click.IntRange(1, 64),
        default=1,
        show_default=True,
        help="Connections of the --verify subscriber, a process each (more than one: a "
        "shared subscription the broker spreads over them; one keeps up with about ten "
        "thousand messages a second).",
    ),
    option(
        "--readback-token",
        help="Bearer token of --readback (prefer BARNSTORM_READBACK_TOKEN, which simulate "
        "serve reads too).",
    ),
)

mqtt_options = stacked(
    option("--qos", type=click.IntRange(0, 2), default=1, show_default=True, help="MQTT QoS."),
    option(
        "--mqtt-version",
        type=click.Choice(["3.1.1", "5", "auto"]),
        default="3.1.1",
        show_default=True,
        help="MQTT version; auto speaks 5 and falls back to 3.1.1 when the broker refuses "
        "it (the report says so). A broker that refuses the version asked for is an error.",
    ),
    option(
        "--topic-alias",
        is_flag=True,
        help="MQTT 5: send each topic's name once per connection, then its alias (when the "
        "broker takes aliases).",
    ),
    option("--username", help="MQTT user name."),
    option("--password", help="MQTT password (prefer BARNSTORM_PASSWORD).", show_default=False),
    option("--ca-file", type=_PATH, help="CA bundle for mqtts:// and https:// targets."),
    option("--cert-file", type=_PATH, help="Client certificate (mTLS)."),
    option("--key-file", type=_PATH, help="Client key (mTLS)."),
    option("--insecure", is_flag=True, help="Do not verify the target's TLS certificate."),
    option(
        "--reconnect-backoff",
        default="1s,60s",
        show_default=True,
        metavar="BASE,CAP",
        help="After a lost connection a device waits a random time in [0, min(CAP, "
        "BASE * 2^n)] before its n-th retry (exponential backoff, full jitter).",
    ),
    option(
        "--source-address",
        multiple=True,
        metavar="ADDR",
        help="Local address MQTT connections leave from, in turn (repeatable: one address "
        "runs out of ports near 28,000 connections).",
    ),
    option(
        "--keepalive",
        type=click.IntRange(5, 65535),
        default=60,
        show_default=True,
        help="MQTT keepalive, seconds.",
    ),
    option(
        "--max-inflight",
        type=click.IntRange(1, 65535),
        metavar="N",
        help="QoS 1/2 messages awaiting their acknowledgement per connection; the rest wait "
        "on the device (default: 20 at QoS 2, Mosquitto's default quota; 65535 at QoS 1). "
        "Match a broker's smaller quota (max_inflight_messages, Receive Maximum).",
    ),
    option(
        "--client-id-prefix",
        metavar="TEXT",
        help="Start of every MQTT client id (then the device or gateway id). Default: "
        "barnstorm-RUNID-, this run's own, so two runs of one fleet on one broker never take "
        "each other's connections; give a prefix to keep ids stable across runs (a broker "
        "ACL or per-device credentials keyed on client ids).",
    ),
    option(
        "--connection",
        type=click.Choice(["per-device", "per-gateway"]),
        help="One MQTT connection per device (default with --mqtt) or per site gateway "
        "(default on the embedded broker).",
    ),
    option(
        "--connect-rate",
        type=click.FloatRange(min=0),
        default=500.0,
        show_default=True,
        help="New connections per second during the ramp (0: all at once).",
    ),
)

run_shape_options = stacked(
    option("--device-types", metavar="LIST", help="Only these device types, comma-separated."),
    option(
        "--kinds",
        metavar="LIST",
        help="Only these message kinds, comma-separated (e.g. daily: a year of scores in "
        "seconds); the others are not generated, and the same devices send the rest at "
        "the same instants.",
    ),
    option(
        "--embedded-broker",
        type=click.Choice(["auto", "mosquitto", "amqtt"]),
        default="auto",
        show_default=True,
        help="Broker of the default run: mosquitto if on PATH, else amqtt.",
    ),
    option("--report", type=_PATH, help="Write the JSON report to FILE."),
    option(
        "--scenario",
        type=_PATH,
        help="Events to play (outbreak, heatwave, outage...): a TOML file, see scenarios/.",
    ),
    option(
        "--clean",
        is_flag=True,
        help="No fleet imperfections: no jitter, clock drift, duplicates, spikes, stuck "
        "sensors, missing fields or firmware payload differences.",
    ),
    option(
        "--processes",
        type=click.IntRange(min=1),
        help="Worker processes, each running its share of the farms: one merged report "
        "(latency from the merged histograms), one delivery accounting. Default 2 for "
        "history (--output with --speed max: each half of the fleet in time order, one after "
        "the other; --processes 1 writes one time-ordered file), 1 otherwise.",
    ),
    option("--allow-loss", is_flag=True, help="Exit 0 even when messages were lost."),
    option(
        "--max-failed",
        default="1%",
        show_default=True,
        metavar="PERCENT",
        help="Share of the sent messages that may fail (timeouts, refusals, error statuses) "
        f"before the run exits {EXIT_FAILURES}; 100% never fails the run for it.",
    ),
)

baseline_options = stacked(
    option(
        "--baseline",
        type=click.Path(dir_okay=False, path_type=Path),
        help="A report of an earlier run (simulate run/mixed --report): judge this run "
        "against it by the regression rules; exit 3 when one breaks.",
    ),
    option(
        "--rule",
        "rules",
        multiple=True,
        metavar="RULE",
        help='A regression rule for --baseline, e.g. "p95<=baseline*1.2+5ms" (repeatable; '
        "default: " + ", ".join(DEFAULT_RULES) + ").",
    ),
)

output_options = stacked(
    option(
        "--html",
        type=_PATH,
        help="Write a self-contained HTML report (verdicts, plots over time, tables) to FILE.",
    ),
    option(
        "--csv",
        type=_PATH,
        metavar="PREFIX",
        help="Also write PREFIX_by_type.csv and PREFIX_timeseries.csv.",
    ),
    option(
        "--timeseries",
        type=_PATH,
        help="Write a row of measures every --snapshot-every to FILE (JSON lines) as the run goes.",
    ),
    option(
        "--snapshot-every",
        metavar="DURATION",
        help="Simulated time between time-series rows (default: about 300 rows over the run).",
    ),
    option(
        "--prometheus",
        metavar="[HOST]:PORT",
        help="Serve the simulator's metrics for Prometheus at /metrics while the run lasts "
        "(e.g. :9464; binds 127.0.0.1 unless a host is given).",
    ),
    option("--quiet", is_flag=True, help="No live progress view."),
)


@click.command("run")
@opt.config_option
@opt.fleet_options
@timing_options
@target_options
@mqtt_options
@run_shape_options
@opt.sla_options
@output_options
@trace_options
@baseline_options
def run_command(**options: Any) -> None:
    """Run the fleet against a target and report what happened."""
    baseline = options["baseline"]
    if baseline is not None:
        load_report(baseline, "--baseline")  # bad input fails now, not after the run
    parse_rules(options["rules"])
    try:
        config = build_run_config(options)
    except ConfigError as exc:
        raise opt.from_file_or_env(exc) from None
    for line in opt.without_effect(ignored_options(config)):
        click.echo(line, err=True)
    for line in check_size(config):
        click.echo(line, err=True)
    result = run_blocking(config)
    if result.report["error"]:
        click.echo(f"simulate: error: {opt.one_line(result.report['error'])}", err=True)
    code = result.exit_code
    if baseline is not None:
        code = against_baseline(baseline, result.report, options["rules"], options["report"], code)
    sys.exit(code)


def against_baseline(
    baseline: Path, report: dict[str, Any], rules: tuple[str, ...], path: Path | None, code: int
) -> int:
    """Judge the run's report against the baseline's, print it, add it to the report file;
    the exit code becomes EXIT_SLA when a rule broke and nothing worse happened."""
    result = judge_against(baseline, report, rules)
    print_comparison(result)
    if path is not None and path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
        data["baseline"] = {"file": str(baseline), **result.as_dict()}
        if result.regressed and data.get("exit_code") == EXIT_OK:
            data["exit_code"] = EXIT_SLA
        write_report(data, path)
    return EXIT_SLA if result.regressed and code == EXIT_OK else code


SOAK_DEFAULTS: dict[str, Any] = {
    "duration": "8h",
    "snapshot_every": "1m",
    "timeseries": Path("soak-timeseries.jsonl"),
    "html": Path("soak-report.html"),
    "report": Path("soak-report.json"),
}


def soak_command() -> click.Command:
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
