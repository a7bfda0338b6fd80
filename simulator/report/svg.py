"""Small self-contained SVG line charts (no plotting library, no network to view them).

Used by the docs' example plots and meant for reports: a chart is a string of SVG that
any browser shows and any Markdown renderer embeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#d1495b", "#00798c", "#edae49", "#30638e", "#66a182", "#8d96a3")


@dataclass(frozen=True)
class Series:
    """One line: x and y values (None for a gap), a label and an optional colour."""

    label: str
    x: Sequence[float]
    y: Sequence[float | None]
    color: str | None = None


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value < high + step - 1e-9:  # the last tick is at or above the highest value
        ticks.append(round(value, 10))
        value += step
    return ticks


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    y_label: str,
    x_label: str = "",
    width: int = 760,
    height: int = 220,
    y_range: tuple[float, float] | None = None,
    bands: Sequence[tuple[float, float, str]] = (),
    top: float = 0.0,
) -> str:
    """An SVG ``<g>`` group (translated by ``top``) with axes, ticks, lines and a legend.

    ``bands`` are horizontal shaded ranges (low, high, colour), e.g. score colour bands.
    """
    left, right, upper, lower = 56.0, 16.0, 44.0, 34.0
    plot_w, plot_h = width - left - right, height - upper - lower
    xs = [x for s in series for x in s.x]
    ys = [y for s in series for y in s.y if y is not None]
    x_min, x_max = (min(xs), max(xs)) if xs else (0.0, 1.0)
    y_min, y_max = y_range if y_range else ((min(ys), max(ys)) if ys else (0.0, 1.0))
    y_ticks = _nice_ticks(y_min, y_max)
    if not y_range:
        y_min, y_max = y_ticks[0], y_ticks[-1]

    def px(x: float) -> float:
        return left + (x - x_min) / ((x_max - x_min) or 1.0) * plot_w

    def py(y: float) -> float:
        return upper + plot_h - (y - y_min) / ((y_max - y_min) or 1.0) * plot_h

    out = [f'<g transform="translate(0,{top:.0f})" font-family="sans-serif" font-size="11">']
    out.append(f'<text x="{left}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>')
    for low, high, colour in bands:
        y0, y1 = py(min(high, y_max)), py(max(low, y_min))
        out.append(
            f'<rect x="{left}" y="{y0:.1f}" width="{plot_w}" height="{y1 - y0:.1f}" '
            f'fill="{colour}" opacity="0.15"/>'
        )
    for tick in y_ticks:
        if y_min <= tick <= y_max:
            y = py(tick)
            out.append(
                f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            )
            out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>')
    for tick in _nice_ticks(x_min, x_max, 8):
        if x_min <= tick <= x_max:
            x = px(tick)
            out.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{upper + plot_h}" '
                f'y2="{upper + plot_h + 4}" stroke="#333"/>'
            )
            out.append(
                f'<text x="{x:.1f}" y="{upper + plot_h + 16}" text-anchor="middle">{tick:g}</text>'
            )
    out.append(
        f'<rect x="{left}" y="{upper}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#333"/>'
    )
    out.append(
        f'<text x="14" y="{upper + plot_h / 2:.0f}" transform="rotate(-90 14 '
        f'{upper + plot_h / 2:.0f})" text-anchor="middle">{escape(y_label)}</text>'
    )
    if x_label:
        out.append(
            f'<text x="{left + plot_w / 2:.0f}" y="{height - 4}" text-anchor="middle">'
            f"{escape(x_label)}</text>"
        )
    for n, line in enumerate(series):
        colour = line.color or PALETTE[n % len(PALETTE)]
        segments: list[list[str]] = [[]]
        for x, value in zip(line.x, line.y, strict=True):
            if value is None or not math.isfinite(value):
                segments.append([])
            else:
                segments[-1].append(f"{px(x):.1f},{py(min(max(value, y_min), y_max)):.1f}")
        for points in segments:
            if len(points) > 1:
                out.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" '
                    f'points="{" ".join(points)}"/>'
                )
        lx = left + 150 * n
        out.append(f'<rect x="{lx:.0f}" y="30" width="12" height="3" fill="{colour}"/>')
        out.append(f'<text x="{lx + 16:.0f}" y="35">{escape(line.label)}</text>')
    out.append("</g>")
    return "\n".join(out)


def bar_chart(
    edges: Sequence[float],
    bars: Sequence[tuple[str, Sequence[float]]],
    *,
    title: str,
    width: int = 760,
    height: int = 220,
) -> str:
    """An SVG ``<g>`` of histograms on shared bin ``edges``: one bar per bin and series,
    side by side within the bin, heights in the series' own units (shares, counts)."""
    left, right, upper, lower = 56.0, 16.0, 44.0, 34.0
    plot_w, plot_h = width - left - right, height - upper - lower
    highest = max((v for _, values in bars for v in values), default=0.0) or 1.0
    y_ticks = _nice_ticks(0.0, highest)
    y_max = y_ticks[-1]
    bins = max(len(edges) - 1, 1)
    slot = plot_w / bins
    out = ['<g font-family="sans-serif" font-size="11">']
    out.append(f'<text x="{left}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>')
    for tick in y_ticks:
        y = upper + plot_h - tick / y_max * plot_h
        out.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
        )
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>')
    width_each = slot * 0.9 / max(len(bars), 1)
    for n, (label, values) in enumerate(bars):
        colour = PALETTE[n % len(PALETTE)]
        for i, value in enumerate(values[:bins]):
            h = value / y_max * plot_h
            x = left + i * slot + slot * 0.05 + n * width_each
            out.append(
                f'<rect x="{x:.1f}" y="{upper + plot_h - h:.1f}" width="{width_each:.1f}" '
                f'height="{h:.1f}" fill="{colour}" opacity="0.85"/>'
            )
        lx = left + 150 * n
        out.append(f'<rect x="{lx:.0f}" y="30" width="12" height="3" fill="{colour}"/>')
        out.append(f'<text x="{lx + 16:.0f}" y="35">{escape(label)}</text>')
    for i in range(0, bins + 1, max(bins // 6, 1)):
        x = left + i * slot
        out.append(
            f'<text x="{x:.1f}" y="{upper + plot_h + 16}" text-anchor="middle">'
            f"{edges[i]:.3g}</text>"
        )
    out.append(
        f'<rect x="{left}" y="{upper}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#333"/>'
    )
    out.append("</g>")
    return "\n".join(out)


def svg_document(groups: Sequence[str], width: int, height: int) -> str:
    """Wrap chart groups into one standalone SVG document."""
    body = "\n".join(groups)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">\n<rect width="100%" height="100%" fill="white"/>\n'
        f"{body}\n</svg>\n"
    )
