"""``--html report.html``: one self-contained page a person reads at a glance.

Verdicts first (the SLAs, then drift over the run), then the headline figures, plots over
time (throughput, latency percentiles, errors, connected devices, the simulator's own CPU
and memory), a table per device type, the delivery accounting and the run's
configuration. Inline CSS and SVG only: it opens without a network, and mails well.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from simulator.redact import write_private
from simulator.report.svg import PALETTE, Series, line_chart, svg_document
from simulator.report.traces_html import findings, traces_table
from simulator.units import iso_utc

CHART_WIDTH, CHART_HEIGHT = 760, 230
TYPE_COLUMNS: tuple[str, ...] = ("device type", "sent", "delivered", "failed", "dropped")
TYPE_COLUMNS += ("in flight", "msg/s", "p50 ms", "p95 ms", "p99 ms", "errors")
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1000px;
       color: #1d2a33; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.muted { color: #667; } table { border-collapse: collapse; margin: 8px 0; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e3e6ea; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.held { color: #1e7b34; font-weight: 600; } .broken { color: #b3261e; font-weight: 600; }
.banner { padding: 10px 14px; border-radius: 6px; margin: 12px 0; font-weight: 600; }
.banner.ok { background: #e6f4ea; color: #1e7b34; }
.banner.bad { background: #fce8e6; color: #b3261e; }
.figures { display: flex; flex-wrap: wrap; gap: 12px; }
.figure { background: #f4f6f8; border-radius: 6px; padding: 8px 14px; min-width: 120px; }
.figure b { display: block; font-size: 20px; }
.charts svg { display: block; margin: 6px 0 14px; }
pre { background: #f4f6f8; padding: 10px; overflow-x: auto; font-size: 12px; }
"""


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _number(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _chart(rows: list[dict[str, Any]], title: str, unit: str, keys: dict[str, str]) -> str:
    minutes = bool(rows) and rows[-1]["wall_s"] > 300
    x = [r["wall_s"] / 60 if minutes else r["wall_s"] for r in rows]
    series = [Series(label, x, [r.get(key) for r in rows]) for key, label in keys.items()]
    highest = max((v for s in series for v in s.y if v is not None), default=0.0)
    group = line_chart(
        series,
        title=title,
        y_label=unit,
        x_label="minutes into the run" if minutes else "seconds into the run",
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        y_range=(0.0, highest * 1.08 or 1.0),  # from zero: a flat line looks flat
    )
    return svg_document([group], CHART_WIDTH, CHART_HEIGHT)


def charts(rows: list[dict[str, Any]]) -> list[str]:
    """The plots over time, one SVG each (none without at least two rows)."""
    if len(rows) < 2:
        return []
    errors = [{**r, "error_pct": r["error_rate"] * 100} for r in rows]
    return [
        _chart(
            rows,
            "Throughput",
            "messages/s",
            {"rate_per_s": "delivered/s", "failed_per_s": "failed/s"},
        ),
        _chart(
            rows,
            "Latency (of each interval)",
            "ms",
            {"p50_ms": "p50", "p95_ms": "p95", "p99_ms": "p99"},
        ),
        _chart(errors, "Errors", "% of messages", {"error_pct": "failed or dropped"}),
        _chart(rows, "Connected devices", "connections", {"connected": "connected"}),
        _chart(rows, "Simulator CPU", "% of a core", {"cpu_pct": "barnstorm CPU"}),
        _chart(rows, "Simulator memory", "MiB", {"rss_mb": "barnstorm RSS"}),
    ]


def _verdicts(report: dict[str, Any]) -> str:
    verdicts = report.get("sla") or []
    drifts = [t for t in report.get("trends") or [] if t["drift"]]
    broken = [v for v in verdicts if not v["held"]]
    parts = []
    if report["outcome"] != "completed":
        parts.append(
            f'<div class="banner bad">Run {escape(report["outcome"])}'
            + (f": {escape(report['error'])}" if report.get("error") else "")
            + "</div>"
        )
    if verdicts:
        kind = "bad" if broken else "ok"
        text = (
            f"{len(broken)} of {len(verdicts)} SLAs broken"
            if broken
            else f"All {len(verdicts)} SLAs held"
        )
        parts.append(f'<div class="banner {kind}">{text}</div>')
        parts.append(
            _table(
                ["SLA", "verdict", "measured"],
                [
                    [
                        f"<code>{escape(v['sla'])}</code>",
                        '<span class="held">held</span>'
                        if v["held"]
                        else '<span class="broken">broken</span>',
                        escape(v["detail"].split(": ", 1)[-1]),
                    ]
                    for v in verdicts
                ],
            )
        )
    else:
        parts.append('<p class="muted">No SLAs were given (--sla).</p>')
    failed = report.get("max_failed")
    if failed and not failed["held"]:
        parts.append(
            f'<div class="banner bad">{failed["failed"]:,} of {failed["sent"]:,} messages '
            f"failed ({failed['share']:.1%}), more than --max-failed {failed['limit']:.1%} "
            "allows</div>"
        )
    accounting = report.get("accounting")
    if accounting and accounting["lost"]:
        parts.append(
            f'<div class="banner bad">{accounting["lost"]:,} of {accounting["expected"]:,} '
            "messages lost</div>"
        )
    if drifts:
        parts.append(
            '<div class="banner bad">Drift over the run: '
            + ", ".join(
                f"{escape(t['metric'])} {t['start']:,} → {t['end']:,}"
                + (f" ({t['change_pct']:+.0f} %)" if t["change_pct"] is not None else "")
                for t in drifts
            )
            + "</div>"
        )
    return "\n".join(parts)


def render_html(report: dict[str, Any]) -> str:
    """The whole page: verdicts first, then figures, plots, tables and the configuration."""
    sections = [
        *_head(report),
        *findings(report.get("traces")),
        "<h2>Verdicts</h2>",
        _verdicts(report),
        _figures(report),
        "<h2>Over time</h2>",
        '<div class="charts">'
        + ("\n".join(charts(report.get("timeseries") or [])) or TOO_SHORT)
        + "</div>",
        "<h2>By device type</h2>",
        _by_type(report),
        *_backend(report),
        *traces_table(report.get("traces")),
        *_trends(report),
        "<h2>Delivery accounting</h2>",
        *_accounting(report),
        "<h2>Connections</h2>",
        _connections(report),
        "<h2>Configuration</h2>",
        f"<pre>{escape(json.dumps(report['config'], indent=2, sort_keys=True))}</pre>",
        "</body></html>",
    ]
    return "\n".join(sections)


TOO_SHORT = '<p class="muted">Too short for plots.</p>'


def _backend(report: dict[str, Any]) -> list[str]:
    """The target's own account of its time (Server-Timing of HTTP ingest), by device type,
    drawn as bars, and any ingest whose queries per request grew (an N+1)."""
    backend = report.get("backend")
    if not backend:
        return []
    entries = [{"name": f"ingest {name}", "backend": figures} for name, figures in backend.items()]
    notes = "".join(
        f'<p class="broken">N+1 suspected in {escape(s["name"])}: {escape(s["why"])}</p>'
        for s in report.get("n_plus_one") or []
    )
    return ["<h2>The target's time (Server-Timing)</h2>", _backend_chart(entries) + notes]


def _head(report: dict[str, Any]) -> list[str]:
    timing, target, fleet = report["time"], report["target"], report["fleet"]
    return [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>barnstorm report: {escape(report['outcome'])}</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>barnstorm run report</h1>",
        f'<p class="muted">{escape(report["outcome"])} · {fleet["farms"]:,} farms, '
        f"{fleet['devices_in_run']:,} devices → {escape(target['kind'])} "
        f"{escape(str(target['url'] or ''))} · simulated "
        f"{iso_utc(timing['simulated_start'])[:19]} to {iso_utc(timing['simulated_end'])[:19]}"
        f" · barnstorm {escape(report['barnstorm_version'])}</p>",
    ]


def _figures(report: dict[str, Any]) -> str:
    totals = report["totals"]
    latency = totals["latency_ms"]
    figures = [
        ("messages sent", _number(totals["sent"])),
        ("delivered", _number(totals["acknowledged"] + totals["unconfirmed"])),
        ("failed or dropped", _number(totals["failed"] + totals["dropped"])),
        ("rate", f"{_number(totals['rate_per_s'], 1)}/s"),
        ("p95 latency", f"{_number(latency['p95'], 1)} ms"),
        ("p99 latency", f"{_number(latency['p99'], 1)} ms"),
        ("devices", _number(report["fleet"]["devices_in_run"])),
        ("wall time", f"{_number(report['time']['wall_seconds'], 1)} s"),
    ]
    lag = report["time"].get("loop_lag_ms")
    if lag:
        figures.append(
            (
                "barnstorm's loop lag p50 / p99 / max",
                f"{lag['p50']:.1f} / {lag['p99']:.1f} / {lag['max']:.1f} ms",
            )
        )
    cells = "".join(f'<div class="figure">{label}<b>{value}</b></div>' for label, value in figures)
    warning = report["time"].get("loop_lag_warning")
    banner = f'<div class="banner bad">{escape(warning)}</div>' if warning else ""
    return f'<div class="figures">{cells}</div>{banner}'


def _by_type(report: dict[str, Any]) -> str:
    rows = [
        [
            escape(name),
            _number(c["sent"]),
            _number(c["acknowledged"] + c["unconfirmed"]),
            _number(c["failed"]),
            _number(c["dropped"]),
            _number(c["in_flight"]),
            _number(c["rate_per_s"], 1),
            _number(c["latency_ms"]["p50"], 1),
            _number(c["latency_ms"]["p95"], 1),
            _number(c["latency_ms"]["p99"], 1),
            escape(", ".join(f"{k} {v:,}" for k, v in c["errors"].items()) or "–"),
        ]
        for name, c in report["by_device_type"].items()
    ]
    return _table(TYPE_COLUMNS, rows)


def _trends(report: dict[str, Any]) -> list[str]:
    trend_rows = report.get("trends") or []
    if not trend_rows:
        return []
    rows = [
        [
            escape(t["metric"]),
            _number(t["start"], 2),
            _number(t["end"], 2),
            "–" if t["change_pct"] is None else f"{t['change_pct']:+.1f} %",
            '<span class="broken">yes</span>' if t["drift"] else "no",
        ]
        for t in trend_rows
    ]
    return [
        "<h2>Trends (start against end, after warm-up)</h2>",
        _table(["metric", "start", "end", "change", "drift"], rows),
    ]


ACCOUNTING_COLUMNS = (
    "expected",
    "received",
    "lost",
    "duplicated",
    "late",
    "unexpected",
    "malformed",
)


def _accounting(report: dict[str, Any]) -> list[str]:
    accounting = report.get("accounting")
    if not accounting:
        return [
            '<p class="muted">No read-back (--readback): delivery is what the target '
            "acknowledged.</p>"
        ]
    sections = [_table(ACCOUNTING_COLUMNS, [[_number(accounting[k]) for k in ACCOUNTING_COLUMNS]])]
    ranges = accounting["lost_ranges"][:50]
    if ranges:
        sections.append(
            _table(
                ["lost: device", "first seq", "last seq"],
                [[escape(r["device_id"]), r["first_seq"], r["last_seq"]] for r in ranges],
            )
        )
    return sections


def _connections(report: dict[str, Any]) -> str:
    keys = ("up", "failed", "lost", "reconnected", "connected_at_end")
    connections = report["connections"]
    return _table(
        ["up", "failed", "lost", "reconnected", "connected at end"],
        [[_number(connections[k]) for k in keys]],
    )


def write_html(report: dict[str, Any], path: Path) -> None:
    """Write a run's page."""
    _write_page(render_html(report), path)


def _write_page(page: str, path: Path) -> None:
    """Write a page, private to its owner, with no secret in it."""
    write_private(path, page, "--html")


def render_mixed_html(data: dict[str, Any]) -> str:
    """The report of a mixed run (devices and dashboard users in one Locust run): the SLA
    verdicts, then ingest beside dashboards over time (throughput, p95, errors), the users
    and connected devices, and a table per request name. ``data`` holds ``rows`` (one per
    sampling interval), ``requests`` (per name), ``sla`` and ``config``."""
    verdicts = _verdicts({"outcome": "completed", "sla": data.get("sla") or [], "trends": []})
    config = json.dumps(data.get("config") or {}, indent=2, sort_keys=True)
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            "<title>barnstorm mixed run report</title>",
            f"<style>{STYLE}</style></head><body>",
            "<h1>barnstorm mixed run report</h1>",
            f'<p class="muted">devices and dashboard users in one Locust run against '
            f"{escape(str(data.get('host') or ''))} · {_number(data['seconds'], 1)} s · "
            f"run {escape(str(data.get('run_id') or ''))}</p>",
            *findings(data.get("traces")),
            "<h2>Verdicts</h2>",
            verdicts,
            "<h2>Over time</h2>",
            '<div class="charts">'
            + ("\n".join(_mixed_charts(data["rows"])) or TOO_SHORT)
            + "</div>",
            "<h2>By request</h2>",
            _requests_table(data["requests"]),
            *traces_table(data.get("traces")),
            _fleet_lag(data.get("fleet_loop_lag_ms") or []),
            "<h2>Configuration</h2>",
            f"<pre>{escape(config)}</pre>",
            "</body></html>",
        ]
    )


def _fleet_lag(shards: list[dict[str, Any]]) -> str:
    """Each fleet process's own event-loop lag: a delay inside every device latency."""
    if not shards:
        return ""
    rows = [
        [escape(str(s["shard"])), _number(s["p50"], 1), _number(s["p99"], 1), _number(s["max"], 1)]
        for s in shards
    ]
    return "<h2>barnstorm's own event-loop lag (fleet processes)</h2>" + _table(
        ("fleet shard", "p50 ms", "p99 ms", "max ms"), rows
    )


def _mixed_charts(rows: list[dict[str, Any]]) -> list[str]:
    """Ingest beside dashboards: throughput, p95 and errors; then users and devices."""
    if len(rows) < 2:
        return []
    errors = [
        {
            **r,
            "ingest_err": r["ingest_error_rate"] * 100,
            "dashboard_err": r["dashboard_error_rate"] * 100,
        }
        for r in rows
    ]
    return [
        _chart(
            rows,
            "Throughput",
            "per second",
            {"ingest_rate": "device messages/s", "dashboard_rate": "dashboard requests/s"},
        ),
        _chart(
            rows,
            "Latency p95 (of each interval)",
            "ms",
            {"ingest_p95": "device messages", "dashboard_p95": "dashboard requests"},
        ),
        _chart(
            errors,
            "Errors",
            "% failed",
            {"ingest_err": "device messages", "dashboard_err": "dashboard requests"},
        ),
        _chart(rows, "Dashboard users", "users", {"users": "users"}),
        _chart(rows, "Connected devices", "connections", {"connected": "connected"}),
    ]


REQUEST_COLUMNS = (
    "name",
    "kind",
    "requests",
    "failures",
    "per s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
    "backend ms",
    "db ms",
    "queries/req",
)


def _requests_table(requests: list[dict[str, Any]]) -> str:
    """Per request name: latency beside the backend's own account (Server-Timing: its
    total, database time and queries per request), an N+1 suspicion in red below."""
    rows = []
    notes = []
    for r in requests:
        backend = r.get("backend") or {}
        ms = backend.get("ms") or {}
        rows.append(
            [
                escape(r["name"]),
                escape(r["kind"]),
                _number(r["requests"]),
                _number(r["failures"]),
                _number(r["rate_per_s"], 1),
                _number(r["p50_ms"]),
                _number(r["p95_ms"]),
                _number(r["p99_ms"]),
                _number(r["max_ms"]),
                _number(ms.get("total"), 1),
                _number(ms.get("db"), 1),
                _number(backend.get("queries_per_request"), 1),
            ]
        )
        if backend.get("n_plus_one"):
            notes.append(
                f'<p class="broken">N+1 suspected in {escape(r["name"])}: '
                f"{escape(backend['n_plus_one'])}</p>"
            )
    chart = _backend_chart(requests)
    return _table(REQUEST_COLUMNS, rows) + "".join(notes) + chart


def _backend_chart(requests: list[dict[str, Any]]) -> str:
    """The backend's time per request name, by component, as bars (Server-Timing)."""
    timed = [r for r in requests if (r.get("backend") or {}).get("ms")]
    if not timed:
        return ""
    components = sorted({c for r in timed for c in r["backend"]["ms"] if c != "total"})
    width, row_h, left = 760, 22, 260
    most = max(sum(r["backend"]["ms"].get(c, 0.0) for c in components) for r in timed) or 1.0
    height = 40 + row_h * len(timed) + 20
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        '<text x="4" y="16" font-size="13" font-weight="bold">'
        "Backend time per request (Server-Timing, mean ms)</text>",
    ]
    for n, component in enumerate(components):
        colour = PALETTE[n % len(PALETTE)]
        out.append(f'<rect x="{left + 90 * n}" y="24" width="12" height="8" fill="{colour}"/>')
        out.append(f'<text x="{left + 90 * n + 16}" y="32">{escape(component)}</text>')
    for i, r in enumerate(timed):
        y = 44 + i * row_h
        out.append(f'<text x="4" y="{y + 12}">{escape(r["name"][:40])}</text>')
        x = float(left)
        for n, component in enumerate(components):
            value = r["backend"]["ms"].get(component, 0.0)
            w = value / most * (width - left - 80)
            out.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 6}" '
                f'fill="{PALETTE[n % len(PALETTE)]}"/>'
            )
            x += w
        queries = r["backend"].get("queries_per_request")
        label = f"{r['backend']['ms'].get('total', 0.0):.1f} ms"
        if queries is not None:
            label += f", {queries:,.0f} queries"
        out.append(f'<text x="{x + 4:.1f}" y="{y + 12}">{escape(label)}</text>')
    out.append("</svg>")
    return '<div class="charts">' + "".join(out) + "</div>"


def write_mixed_html(data: dict[str, Any], path: Path) -> None:
    """Write a mixed run's page."""
    _write_page(render_mixed_html(data), path)
