"""The end-of-run summary on the terminal: delivery first, then latencies, then verdicts."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from simulator.metrics.loop_lag import UNTIMED_TARGETS
from simulator.report.tables import folded
from simulator.report.traces import summary_lines

#: a scheduler lag past this is worth a warning: the simulator itself was the bottleneck.
_LAG_WARNING_MS = 1000.0


def _fmt_ms(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def print_summary(report: dict[str, Any], console: Console) -> None:
    """The end-of-run summary: loss first, then a table per device type."""
    accounting = report.get("accounting")
    if accounting and accounting["lost"]:
        _print_loss(accounting, console)
    verify = report.get("verify")
    if verify and verify["acknowledged_not_delivered"]:
        _print_loss(verify, console, "the broker acknowledged but its subscribers never got")
    _print_headline(report, console)
    for table in _type_tables(report, console.width):
        console.print(table)
    for name, figures in (report.get("backend") or {}).items():
        parts = [f"{part} {ms:,.1f} ms" for part, ms in figures["ms"].items()]
        queries = figures.get("queries_per_request")
        if queries is not None:
            parts.append(f"{queries:,.1f} queries per request")
        console.print(f"target's time for {name} (Server-Timing): " + ", ".join(parts))
    for suspect in report.get("n_plus_one") or []:
        console.print(f"[bold red]N+1 suspected in ingest {suspect['name']}:[/] {suspect['why']}")
    for line in summary_lines(report.get("traces")):
        console.print(escape(line))
    mapped = report["fleet"].get("device_map")
    if mapped:
        console.print(
            escape(
                f"device map {mapped['file']}: {mapped['bound']:,} devices under the product's "
                f"IDs, {mapped['left_out']:,} simulated devices left out (no row for them), "
                f"{mapped['unused_rows']:,} rows no simulated device fit"
            )
        )
    spans = report.get("client_spans")
    if spans:
        line = f"client spans to {spans['url']}: {spans['exported']:,} sent"
        if spans["failed"] or spans["dropped"]:
            line += f", {spans['failed']:,} failed ({spans['last_error']}), "
            line += f"{spans['dropped']:,} dropped"
        console.print(escape(line))
    if report["target"]["kind"] == "mqtt":
        connections = report["connections"]
        console.print(
            f"connections: {connections['up']:,} up, {connections['failed']:,} failed, "
            f"{connections['lost']:,} lost, {connections['reconnected']:,} reconnected"
        )
        at_once = (connections.get("errors") or {}).get("closed_at_once", 0)
        rejected = report["totals"]["errors"].get("rejected", 0)
        if at_once and rejected:
            console.print(
                f"[bold yellow]the broker closed {at_once:,} connections over messages it "
                f"would not take ({rejected:,} rejected):[/] does it take QoS "
                f"{report['target'].get('qos')}, these topics and this size?"
            )
        elif at_once:
            console.print(
                f"[bold yellow]the broker closed {at_once:,} connections within a second of "
                "accepting them:[/] is another client using the same client ids? (Two runs "
                "of one fleet given the same --client-id-prefix take each other's.)"
            )
    if accounting and not accounting["lost"]:
        console.print(
            f"[green]delivery: all {accounting['expected']:,} messages the target accepted "
            f"were received[/] ({accounting['duplicated']:,} duplicates)"
        )
    if verify:
        _print_verified(verify, console)
    _print_notes(report["totals"], console)
    failed = report.get("max_failed")
    if failed and not failed["held"]:
        console.print(
            f"[bold red]too many failed:[/] {failed['failed']:,} of {failed['sent']:,} messages "
            f"({failed['share']:.1%}), more than --max-failed {failed['limit']:.1%} allows"
        )
    for trend in report.get("trends") or []:
        if trend["drift"]:
            change = "" if trend["change_pct"] is None else f" ({trend['change_pct']:+.0f} %)"
            console.print(
                f"[bold yellow]drift:[/] {trend['metric']} {trend['start']:,} → "
                f"{trend['end']:,}{change} from the start of the run to its end"
            )
    print_verdicts(report.get("sla") or [], console)


def _print_verified(verify: dict[str, Any], console: Console) -> None:
    """What --verify's subscriber saw, beside the books."""
    observer = verify["observer"]
    oddities = [
        f"{verify[key]:,} {what}"
        for key, what in (
            ("delivered_twice", "delivered twice"),
            ("out_of_order", "out of order"),
            ("unexpected", "of other devices"),
            ("malformed", "unreadable"),
        )
        if verify[key]
    ]
    if verify["lost"] and not verify["acknowledged_not_delivered"]:
        oddities.insert(0, f"{verify['lost']:,} written at QoS 0 and never delivered")
    colour = "yellow" if oddities else "green"
    console.print(
        f"[{colour}]verify: a subscriber on the broker (QoS {observer['qos']}, "
        f"{observer['connections']} connection(s)) received {verify['received']:,} of the "
        f"{verify['expected']:,} messages sent[/]"
        + (f": {', '.join(oddities)}" if oddities else "")
    )


def _print_loss(
    accounting: dict[str, Any],
    console: Console,
    what: str = "that the target accepted but never delivered",
) -> None:
    lost = accounting.get("acknowledged_not_delivered", accounting["lost"])
    console.print(f"[bold red]LOST {lost:,} of {accounting['expected']:,} messages[/] {what}:")
    for lost in accounting["lost_ranges"]:
        console.print(f"  {lost['device_id']} seq {lost['first_seq']}–{lost['last_seq']}")


def _print_headline(report: dict[str, Any], console: Console) -> None:
    """What ran against what, how fast, and whether the simulator kept its schedule."""
    time = report["time"]
    target = report["target"]
    speed = "max" if time["speed"] is None else f"{time['speed']:g}x"
    where = f"{target['kind']} {target.get('url') or ''}".strip()
    if target["kind"] == "mqtt":
        embedded = f"embedded {target['embedded_broker']} " if target["embedded_broker"] else ""
        version = f"MQTT {target['mqtt_version']}, " if target.get("mqtt_version") else ""
        where = f"{embedded}{target['url']} ({version}QoS {target['qos']}, {target['connection']})"
    console.print(
        f"[bold]barnstorm[/] {report['outcome']}: {report['fleet']['farms']} farms, "
        f"{report['fleet']['devices_in_run']:,} devices → {where}"
        f" · speed {speed} · {time['wall_seconds']:.1f}s wall"
    )
    if target.get("mqtt_version_note"):
        console.print(f"[yellow]MQTT: {target['mqtt_version_note']}[/]")
    lag = time.get("loop_lag_ms")
    if lag:
        meaning = (
            "no latency measured: a local write"
            if target["kind"] in UNTIMED_TARGETS
            else "its own delay, inside every latency it measured"
        )
        console.print(
            f"barnstorm's event-loop lag: p50 {lag['p50']:,.1f} ms, p99 {lag['p99']:,.1f} ms, "
            f"max {lag['max']:,.1f} ms ({meaning})"
        )
    if time.get("loop_lag_warning"):
        console.print(f"[yellow]warning: {time['loop_lag_warning']}[/]")
    if time["max_clock_lag_ms"] > _LAG_WARNING_MS:
        console.print(
            f"[yellow]warning: the simulator fell up to {time['max_clock_lag_ms'] / 1000:.1f}s "
            "behind its schedule; latencies include that delay (fewer devices per process, "
            "or a lower --speed)[/]"
        )


_TYPE_COLUMNS = (
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
)


def _type_tables(report: dict[str, Any], width: int) -> list[Table]:
    """The figures per device type, folded to ``width`` (counts, then latencies, in an
    80-column log)."""
    rows = [*sorted(report["by_device_type"].items()), ("total", report["totals"])]
    cells = []
    for name, counts in rows:
        latency = counts["latency_ms"]
        cells.append(
            [
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
            ]
        )
    return folded(_TYPE_COLUMNS, cells, width)


def _print_notes(totals: dict[str, Any], console: Console) -> None:
    """The fleet's own behaviour, retries and errors, each on one line where there are any."""
    # Duplicates are not part of sent: a subscriber or the target's store counts the ones
    # that went out on top of it.
    out = totals.get("duplicates_out", 0)
    notes = [
        f"{totals[key]:,} {label}"
        for key, label in (
            ("backfilled", "backfilled after being offline"),
            ("duplicates", f"duplicates (same seq; {out:,} went out on top of sent)"),
            ("malformed", "malformed on purpose"),
        )
        if totals.get(key)
    ]
    if notes:
        console.print("fleet behaviour: " + ", ".join(notes))
    retried = totals.get("retried") or {}
    if retried:
        console.print(
            "retried after Retry-After: " + ", ".join(f"{k} {n:,}" for k, n in retried.items())
        )
    errors = totals["errors"]
    if errors:
        console.print("errors: " + ", ".join(f"{kind} {n:,}" for kind, n in errors.items()))


def print_verdicts(verdicts: list[dict[str, Any]], console: Console) -> None:
    """One line per SLA: held in green, broken in red."""
    for verdict in verdicts:
        if verdict["held"]:
            console.print(f"[green]SLA held[/]   {escape(verdict['detail'])}")
        else:
            console.print(f"[bold red]SLA BROKEN[/] {escape(verdict['detail'])}")
