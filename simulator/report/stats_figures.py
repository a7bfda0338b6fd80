"""The statistics of a telemetry file as figures: every number of ``measure``'s result,
flat and keyed the same in any file that has it (``cough_monitor/daily rehs band
80–<90``), so that two files compare figure by figure and the docs' table holds to a
rerun; and how each reads (a share in per cent, days, seconds)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from simulator.report.stats import DAY, LONG_SPELL_DAYS


@dataclass(frozen=True)
class Figure:
    """One number of a file, with a key that is the same in any file that has it."""

    key: str
    value: float
    unit: str  # "share", "days", "s", "per year" or "" (a plain number)


def figures(stats: dict[str, Any]) -> list[Figure]:
    """Every figure of ``measure``'s result, flat, in a stable order."""
    out: list[Figure] = []
    for group in stats["groups"]:
        prefix = f"{group['device_type']}/{group['kind']}"
        out.append(Figure(f"{prefix} messages", group["messages"], ""))
        out.append(Figure(f"{prefix} devices", group["devices"], ""))
        out.append(Figure(f"{prefix} device-days", group["device_days"], ""))
        interval = group.get("interval")
        if interval:
            out.append(Figure(f"{prefix} interval median", interval["median_s"], "s"))
            out.append(Figure(f"{prefix} interval p95", interval["p95_s"], "s"))
            out.append(Figure(f"{prefix} gaps over 2x median", interval["gap_share"], "share"))
            out.append(Figure(f"{prefix} longest gap", interval["max_gap_s"], "s"))
        if "duplicate_share" in group:
            out.append(Figure(f"{prefix} duplicates", group["duplicate_share"], "share"))
        for name, f in group["fields"].items():
            at = f"{prefix} {name}"
            out.append(Figure(f"{at} missing", f["missing_share"], "share"))
            for q in ("p5", "p50", "p95", "mean"):
                out.append(Figure(f"{at} {q}", f[q], ""))
            out.append(Figure(f"{at} day-to-day change", f["day_to_day_change"], ""))
            out.append(Figure(f"{at} lag-1 autocorrelation", f["lag1_autocorrelation"], ""))
            for label, share in f.get("bands", {}).items():
                out.append(Figure(f"{at} band {label}", share, "share"))
            below = f.get("below")
            if below:
                under = f"{at} below {below['threshold']:g}"
                out.append(Figure(f"{under}, of days with a value", below["days_share"], "share"))
                out.append(Figure(f"{under} spells per device-year", below["per_device_year"], ""))
                out.append(
                    Figure(
                        f"{under} episodes per device-year",
                        below["episodes_per_device_year"],
                        "",
                    )
                )
                out.append(Figure(f"{under} spell median", below["median_days"], "days"))
                out.append(Figure(f"{under} spell mean", below["mean_days"], "days"))
                out.append(Figure(f"{under} spell p90", below["p90_days"], "days"))
                out.append(Figure(f"{under} spell max", below["max_days"], "days"))
                out.append(
                    Figure(
                        f"{under} spells over {LONG_SPELL_DAYS} days",
                        below["over_21_days_share"],
                        "share",
                    )
                )
        for name, t in group["text"].items():
            for value, share in t["shares"].items():
                out.append(Figure(f"{prefix} {name}={value}", share, "share"))
            out.append(Figure(f"{prefix} {name} missing", t["missing_share"], "share"))
    return out


def format_value(value: float, unit: str) -> str:
    """A figure as text: shares in percent, seconds as a duration, days with one decimal."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if unit == "share":
        return f"{value * 100:.1f} %"
    if unit == "s":
        for size, suffix in ((DAY, "d"), (3600.0, "h"), (60.0, "m")):
            if value >= size:
                return f"{value / size:.3g}{suffix}"
        return f"{value:.3g}s"
    if unit == "days":
        return f"{value:.1f} d"
    if float(value).is_integer() and abs(value) >= 100:
        return f"{int(value):,}"
    return f"{value:.3g}"
