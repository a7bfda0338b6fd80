"""``simulate compare --html``: a baseline and a run side by side, the rules judged."""

from __future__ import annotations

from html import escape
from pathlib import Path

from simulator.metrics.regression import METRICS, UNITS, Comparison, change, describe, figure
from simulator.redact import write_private
from simulator.report.html import STYLE, _table


def render_compare_html(result: Comparison, baseline: str, current: str) -> str:
    banner = (
        f'<div class="banner bad">Regression: {len(result.broken)} rule(s) broke against '
        "the baseline, the likely cause first</div>"
        if result.regressed
        else '<div class="banner ok">No regression against the baseline</div>'
    )
    verdicts = "".join(
        f'<p class="broken">{number}. {escape(v.scope)}: {escape(describe(v))}<br>'
        f'<span class="muted">{escape(v.evidence)}</span></p>'
        for number, v in enumerate(result.broken, 1)
    )
    verdicts += "".join(
        f'<p class="held">improved: {escape(v.scope)}: {escape(describe(v))}</p>'
        for v in result.improved
    )
    skipped = "".join(
        f'<p class="muted">not judged: {escape(u.scope)} {u.metric} ({escape(u.reason)})</p>'
        for u in result.unjudged
    )
    skipped += "".join(
        f'<p class="muted">only in this run: {escape(name)}</p>' for name in result.only_now
    )
    shown = [m for m in METRICS if m != "statuses"]  # a status mix has no single figure
    header = ["scope", *(f"{m} {UNITS[m]}".strip() for m in shown)]
    rows = []
    for name in sorted(set(result.baseline) | set(result.current)):
        before, now = result.baseline.get(name) or {}, result.current.get(name) or {}
        cells = [escape(name)]
        for metric in shown:
            b, c = before.get(metric), now.get(metric)
            cells.append(
                f"{figure(metric, b)} → {figure(metric, c)}<br>"
                f'<span class="muted">{escape(change(metric, b, c))}</span>'
            )
        rows.append(cells)
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            "<title>barnstorm: a run against its baseline</title>",
            f"<style>{STYLE}</style></head><body>",
            "<h1>A run against its baseline</h1>",
            f'<p class="muted">baseline {escape(baseline)} → this run {escape(current)}</p>',
            banner,
            "<h2>Rules</h2>",
            verdicts + skipped,
            "<h2>Side by side (baseline → this run)</h2>",
            _table(header, rows),
            "</body></html>",
        ]
    )


def write_compare_html(result: Comparison, baseline: str, current: str, path: Path) -> None:
    write_private(path, render_compare_html(result, baseline, current), "--html")
