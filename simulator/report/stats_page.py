"""``simulate stats`` output: figures as a terminal table, Markdown or an HTML page with
histograms and example series, for one file or two side by side."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

import numpy as np

from simulator.report.html import STYLE, _table
from simulator.report.stats_figures import Figure, figures, format_value
from simulator.report.svg import PALETTE, Series, bar_chart, line_chart

#: a figure's change between two files, in the figure's own terms.
Row = tuple[str, str, str | None, str | None]


def rows(first: dict[str, Any], second: dict[str, Any] | None = None) -> list[Row]:
    """(key, value, other value, change) per figure; the last two are None for one file.
    A share changes in percentage points, any other figure in percent."""
    mine = figures(first)
    if second is None:
        return [(f.key, format_value(f.value, f.unit), None, None) for f in mine]
    theirs = {f.key: f for f in figures(second)}
    keys = [f.key for f in mine] + [k for k in theirs if k not in {f.key for f in mine}]
    by_key = {f.key: f for f in mine}
    out: list[Row] = []
    for key in keys:
        a, b = by_key.get(key), theirs.get(key)
        out.append(
            (
                key,
                format_value(a.value, a.unit) if a else "–",
                format_value(b.value, b.unit) if b else "–",
                change(a, b),
            )
        )
    return out


def change(a: Figure | None, b: Figure | None) -> str:
    """How ``b`` differs from ``a``: percentage points for shares, percent otherwise."""
    if a is None or b is None or not (_finite(a.value) and _finite(b.value)):
        return "–"
    if a.unit == "share":
        return f"{(b.value - a.value) * 100:+.1f} pp"
    if a.value == 0:
        return "–" if b.value == 0 else "new"
    return f"{(b.value / a.value - 1.0) * 100:+.0f} %"


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def markdown(first: dict[str, Any], second: dict[str, Any] | None = None) -> str:
    """The figures as a Markdown table (what the README's realism table is)."""
    if second is None:
        lines = ["| figure | value |", "|---|---:|"]
        lines += [f"| {key} | {value} |" for key, value, _, _ in rows(first)]
    else:
        lines = ["| figure | first | second | change |", "|---|---:|---:|---:|"]
        lines += [f"| {k} | {a} | {b} | {c} |" for k, a, b, c in rows(first, second)]
    return "\n".join(lines) + "\n"


def render_stats_html(first: dict[str, Any], second: dict[str, Any] | None = None) -> str:
    """One page: the figures table, then per numeric field a histogram (both files'
    shares per bin when comparing) and a few devices' daily series."""
    title = f"barnstorm stats: {first['file']}"
    if second is not None:
        title += f" against {second['file']}"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p class='muted'>{first['messages']:,} messages"
        + (f" ({first['unreadable']:,} unreadable)" if first["unreadable"] else "")
        + (f"; the other file {second['messages']:,}" if second is not None else "")
        + "</p>",
    ]
    header: Sequence[str] = (
        ("figure", "value") if second is None else ("figure", "first", "second", "change")
    )
    table_rows = [
        [escape(k), escape(a)] + ([escape(b or ""), escape(c or "")] if second is not None else [])
        for k, a, b, c in rows(first, second)
    ]
    parts.append("<h2>Figures</h2>" + _table(header, table_rows))
    others = {(g["device_type"], g["kind"]): g for g in second["groups"]} if second else {}
    for group in first["groups"]:
        other = others.get((group["device_type"], group["kind"]))
        for name, field in group["fields"].items():
            parts.append(f"<h2>{escape(group['device_type'])}/{escape(group['kind'])} {name}</h2>")
            parts.append("<div class='charts'>" + _charts(name, field, other, second) + "</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _charts(
    name: str, field: dict[str, Any], other: dict[str, Any] | None, second: dict[str, Any] | None
) -> str:
    charts = []
    histogram = field.get("histogram")
    if histogram:
        total = sum(histogram["counts"]) or 1
        bars = [("first" if second else name, [c / total for c in histogram["counts"]])]
        theirs = other["fields"].get(name) if other else None
        if theirs and theirs.get("histogram"):
            again = _rebin(theirs, histogram["edges"])
            bars.append(("second", again))
        charts.append(
            _svg(bar_chart(histogram["edges"], bars, title=f"{name}: share of values per bin"))
        )
    examples = field.get("examples") or []
    series = [
        Series(f"device {n + 1}", e["days"], e["values"], PALETTE[n % len(PALETTE)])
        for n, e in enumerate(examples)
    ]
    if series:
        charts.append(
            _svg(
                line_chart(
                    series,
                    title=f"{name}: daily mean of a few devices",
                    y_label=name,
                    x_label="day",
                )
            )
        )
    return "".join(charts)


def _rebin(field: dict[str, Any], edges: list[float]) -> list[float]:
    """Another file's histogram as shares on these bin edges (by its bin centres; centres
    outside them count in the first or the last bin)."""
    theirs = field["histogram"]
    counts = np.asarray(theirs["counts"], np.float64)
    bounds = np.asarray(theirs["edges"], np.float64)
    centres = (bounds[:-1] + bounds[1:]) / 2
    bins = len(edges) - 1
    where = np.clip(np.searchsorted(edges, centres, side="right") - 1, 0, bins - 1)
    shares = np.bincount(where, weights=counts / max(counts.sum(), 1.0), minlength=bins)
    return [float(share) for share in shares]


def _svg(group: str, width: int = 760, height: int = 230) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">{group}</svg>'
    )
