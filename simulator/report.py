"""The run report: one JSON document (``--report``) and the summary printed at the end.

Schema (``schema_version`` 1; every count is an integer, latencies are milliseconds)::

    {
      "schema_version": 1,
      "barnstorm_version": "0.1.0",
      "outcome": "completed" | "interrupted" | "failed",
      "error": null | "one-line message",
      "exit_code": 0,
      "target": {"kind": "mqtt" | "http" | "file" | "memory", "url": ...,
                 "embedded_broker": null | "amqtt" | "mosquitto",
                 "backend": null | "http://127.0.0.1:PORT" (the embedded default's),
                 "qos": 1, "connection": "per-device" | "per-gateway"},
      "fleet": {"farms", "sites", "rooms", "devices", "devices_in_run", "seed"},
      "time": {"simulated_start", "simulated_end", "speed", "wall_seconds", "max_clock_lag_ms"},
      "totals": COUNTS,
      "by_device_type": {"cough_monitor": COUNTS, ...},
      "connections": {"up", "failed", "lost", "reconnected", "connected_at_end",
                      "errors": {kind: n}},
      "accounting": null | {"expected", "received", "lost", "duplicated", "unexpected", "malformed",
                             "late", "lost_ranges": [{"device_id", "first_seq", "last_seq"}]},
      "timeseries": [{"wall_s", "sim", "sent", "delivered", "failed", "dropped", "in_flight",
                      "rate_per_s", "failed_per_s", "error_rate", "p50_ms", "p95_ms",
                      "p99_ms", "connected", "cpu_pct", "rss_mb"}, ...] (see timeseries.py),
      "trends": [{"metric", "start", "end", "change_pct", "drift": bool}, ...],
      "sla": [{"sla": "ingest.p95<250ms", "scope", "metric", "op", "threshold", "unit",
               "actual", "held": true, "detail": "one line"}]  (with --sla only),
      "config": {the run's options, secrets removed}
    }

    COUNTS = {"sent", "acknowledged", "unconfirmed", "failed", "dropped", "in_flight", "bytes",
              "rate_per_s", "latency_ms": {"p50", "p95", "p99", "max", "mean"}, "errors": {kind: n}}

``sent`` is every message the schedule produced; each ends as exactly one of
``acknowledged`` (the target confirmed it: PUBACK/PUBCOMP, a written line),
``unconfirmed`` (QoS 0: written to the socket, the protocol gives no receipt),
``failed`` (handed over, then lost or refused), ``dropped`` (never handed over: the
connection was down) or ``in_flight`` (no outcome when the run stopped), so
``sent = acknowledged + unconfirmed + failed + dropped + in_flight``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .errors import ConfigError

SCHEMA_VERSION = 1
#: a scheduler lag past this is worth a warning: the simulator itself was the bottleneck.
_LAG_WARNING_MS = 1000.0


def write_csv(report: dict[str, Any], prefix: Path) -> list[Path]:
    """``PREFIX_by_type.csv`` (a row per device type and the total) and, when the run kept
    a time series, ``PREFIX_timeseries.csv`` (a row per interval): for spreadsheets."""
    import csv

    written = []
    by_type = prefix.with_name(prefix.name + "_by_type.csv")
    columns = ["device_type", "sent", "acknowledged", "unconfirmed", "failed", "dropped"]
    columns += ["in_flight", "bytes", "rate_per_s", "p50_ms", "p95_ms", "p99_ms", "max_ms"]
    try:
        with by_type.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(columns)
            items = [*report["by_device_type"].items(), ("total", report["totals"])]
            for name, counts in items:
                latency = counts["latency_ms"]
                quantiles = (latency[q] for q in ("p50", "p95", "p99", "max"))
                writer.writerow([name, *(counts[c] for c in columns[1:9]), *quantiles])
        written.append(by_type)
        rows = report.get("timeseries") or []
        if rows:
            series = prefix.with_name(prefix.name + "_timeseries.csv")
            with series.open("w", newline="", encoding="utf-8") as file:
                dict_writer = csv.DictWriter(file, fieldnames=list(rows[0]))
                dict_writer.writeheader()
                dict_writer.writerows(rows)
            written.append(series)
    except OSError as exc:
        raise ConfigError("--csv", f"cannot write {prefix}_*.csv ({exc.strerror})") from None
    return written


def write_report(report: dict[str, Any], path: Path) -> None:
    """Write ``report`` atomically (a half-written report is worse than none)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=path.parent, prefix=f".{path.name}.", delete=False, encoding="utf-8"
        ) as handle:
            json.dump(report, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        os.replace(handle.name, path)
    except OSError as exc:
        raise ConfigError("--report", f"cannot write {path}: {exc.strerror or exc}") from None


def _fmt_ms(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def print_summary(report: dict[str, Any], console: Console) -> None:
    """The end-of-run summary: loss first, then a table per device type."""
    accounting = report.get("accounting")
    if accounting and accounting["lost"]:
        console.print(
            f"[bold red]LOST {accounting['lost']:,} of {accounting['expected']:,} messages[/] "
            "that the target accepted but never delivered:"
        )
        for lost in accounting["lost_ranges"]:
            console.print(f"  {lost['device_id']} seq {lost['first_seq']}–{lost['last_seq']}")
    time = report["time"]
    target = report["target"]
    speed = "max" if time["speed"] is None else f"{time['speed']:g}x"
    where = f"{target['kind']} {target.get('url') or ''}".strip()
    if target["kind"] == "mqtt":
        embedded = f"embedded {target['embedded_broker']} " if target["embedded_broker"] else ""
        where = f"{embedded}{target['url']} (QoS {target['qos']}, {target['connection']})"
    console.print(
        f"[bold]barnstorm[/] {report['outcome']}: {report['fleet']['farms']} farms, "
        f"{report['fleet']['devices_in_run']:,} devices → {where}"
        f" · speed {speed} · {time['wall_seconds']:.1f}s wall"
    )
    if time["max_clock_lag_ms"] > _LAG_WARNING_MS:
        console.print(
            f"[yellow]warning: the simulator fell up to {time['max_clock_lag_ms'] / 1000:.1f}s "
            "behind its schedule; latencies include that delay (fewer devices per process, "
            "or a lower --speed)[/]"
        )
    table = Table(show_edge=False, pad_edge=False)
    for column in (
        "device type",
        "sent",
        "acked",
        "unconf.",
        "failed",
        "dropped",
        "in flight",
        "msg/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
    ):
        table.add_column(column, justify="left" if column == "device type" else "right")
    rows = [*sorted(report["by_device_type"].items()), ("total", report["totals"])]
    for name, counts in rows:
        latency = counts["latency_ms"]
        table.add_row(
            f"[bold]{name}[/]" if name == "total" else name,
            f"{counts['sent']:,}",
            f"{counts['acknowledged']:,}",
            f"{counts['unconfirmed']:,}",
            f"{counts['failed']:,}",
            f"{counts['dropped']:,}",
            f"{counts['in_flight']:,}",
            f"{counts['rate_per_s']:,.1f}",
            _fmt_ms(latency["p50"]),
            _fmt_ms(latency["p95"]),
            _fmt_ms(latency["p99"]),
            _fmt_ms(latency["max"]),
        )
    console.print(table)
    connections = report["connections"]
    if target["kind"] == "mqtt":
        console.print(
            f"connections: {connections['up']:,} up, {connections['failed']:,} failed, "
            f"{connections['lost']:,} lost, {connections['reconnected']:,} reconnected"
        )
    if accounting and not accounting["lost"]:
        console.print(
            f"[green]delivery: all {accounting['expected']:,} messages the target accepted "
            f"were received[/] ({accounting['duplicated']:,} duplicates)"
        )
    extra = report["totals"]
    notes = [
        f"{extra[key]:,} {label}"
        for key, label in (
            ("backfilled", "backfilled after being offline"),
            ("duplicates", "duplicates (same seq)"),
            ("malformed", "malformed on purpose"),
        )
        if extra.get(key)
    ]
    if notes:
        console.print("fleet behaviour: " + ", ".join(notes))
    retried = report["totals"].get("retried") or {}
    if retried:
        console.print(
            "retried after Retry-After: " + ", ".join(f"{k} {n:,}" for k, n in retried.items())
        )
    errors = report["totals"]["errors"]
    if errors:
        console.print("errors: " + ", ".join(f"{kind} {n:,}" for kind, n in errors.items()))
    for trend in report.get("trends") or []:
        if trend["drift"]:
            change = "" if trend["change_pct"] is None else f" ({trend['change_pct']:+.0f} %)"
            console.print(
                f"[bold yellow]drift:[/] {trend['metric']} {trend['start']:,} → "
                f"{trend['end']:,}{change} from the start of the run to its end"
            )
    print_verdicts(report.get("sla") or [], console)


def print_verdicts(verdicts: list[dict[str, Any]], console: Console) -> None:
    """One line per SLA: held in green, broken in red."""
    for verdict in verdicts:
        if verdict["held"]:
            console.print(f"[green]SLA held[/]   {escape(verdict['detail'])}")
        else:
            console.print(f"[bold red]SLA BROKEN[/] {escape(verdict['detail'])}")
