"""The Performance page's table (docs/performance.md), rendered from ``python -m
benchmarks ... --json`` output, so that the text and the measurement cannot drift apart.

    python -m benchmarks all --json benchmarks/results.json
    python -m benchmarks.render benchmarks/results.json docs/performance.md

The table sits between ``<!-- performance:begin -->`` and ``<!-- performance:end -->`` in
docs/performance.md; everything else is left alone. Each row shows barnstorm's figure, the baseline
measured in the same run with what it is, the ratio and the goal (met or not, judged from
the figures, never written by hand). A test checks that docs/performance.md holds the rendering of
``benchmarks/results.json``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

BEGIN = "<!-- performance:begin -->"
END = "<!-- performance:end -->"

#: how a figure's key ends, and the unit it is shown with (longest suffix first).
UNITS = (
    ("_msg_per_cpu_s_after_start_up", "msg per CPU-second after start-up"),
    ("_msg_per_cpu_s", "msg per CPU-second"),
    ("_req_per_cpu_s", "req per CPU-second"),
    ("_msg_per_s_under_5ms_lag", "msg/s with its event loop's lag p99 under 5 ms"),
    ("_msg_per_s", "msg/s"),
    ("_req_per_s", "req/s"),
    ("_memory_mb", "MB"),
    ("_rss_kb_per_connection", "KB resident per connection"),
    ("_cpu_ms_per_message", "ms of CPU per message"),
    ("_cpu_ms_per_1000_msg", "ms of CPU per 1,000 messages"),
    ("_connect_rate_per_s", "connections/s"),
    ("_rss_mb", "MB resident"),
    ("_connected", "connected"),
    ("_processes", "processes"),
    ("_s", "s"),
)


def _unit(key: str) -> tuple[str, str] | None:
    """(suffix, unit) of a figure's key, or None for a key that is not a figure."""
    for suffix, unit in UNITS:
        if key.endswith(suffix):
            return suffix, unit
    return None


def _number(value: float) -> str:
    if isinstance(value, int) or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.3g}"


def _figures(result: dict[str, Any], prefix: str) -> str:
    """Every number under ``prefix`` with its unit (and what it is, when the key says more
    than the unit), the first one in bold."""
    parts: list[str] = []
    for key, value in result.items():
        found = _unit(key)
        if not key.startswith(prefix) or found is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        suffix, unit = found
        label = key[len(prefix) : len(key) - len(suffix)].strip("_").replace("_", " ")
        text = f"{_number(value)} {unit}" + (f" ({label})" if label else "")
        parts.append(f"**{text}**" if not parts else text)
    return "; ".join(parts)


def goal_verdict(result: dict[str, Any]) -> str:
    """The goal and whether the figures meet it: ``>= 3`` is judged on the ratio, a goal
    with its own ``goal_met`` on that."""
    goal = result.get("goal")
    if not goal:
        return ""
    met = result.get("goal_met")
    if met is None:
        found = re.fullmatch(r"\s*(>=|<=|>|<)\s*([\d.]+)\s*", str(goal))
        ratio = result.get("ratio")
        if found is None or not isinstance(ratio, int | float):
            return str(goal)
        op, bound = found.group(1), float(found.group(2))
        met = {">=": ratio >= bound, "<=": ratio <= bound, ">": ratio > bound, "<": ratio < bound}[
            op
        ]
    return f"{goal}: **{'met' if met else 'not met'}**"


def row(result: dict[str, Any]) -> str:
    what = f"`{result['name']}`: {result['what']}"
    ours = _figures(result, "barnstorm_")
    accounted = result.get("barnstorm_accounted")
    if accounted:
        ours += f"; {accounted}"
    baseline = str(result.get("baseline", ""))
    theirs = _figures(result, "baseline_")
    if theirs:
        baseline = f"{baseline}: {theirs}" if baseline else theirs
    locust = _figures(result, "locust_mqtt_user_").replace("**", "")
    if locust:
        baseline += f"; Locust's own MQTT user: {locust}"
        if "ratio_to_locust" in result:
            baseline += f" (ratio {_number(result['ratio_to_locust'])})"
    ratio = result.get("ratio")
    if ratio is not None:
        shown = _number(ratio)
    else:  # several ratios: ratio_memory, ratio_cpu ...
        shown = ", ".join(
            f"{key.removeprefix('ratio_').replace('_', ' ')} {_number(value)}"
            for key, value in result.items()
            if key.startswith("ratio_") and key != "ratio_to_locust"
        )
    cells = [what, ours, baseline, shown, goal_verdict(result)]
    return "| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |"


def render(data: dict[str, Any]) -> str:
    machine = data["machine"]
    lines = [
        BEGIN,
        f"Rendered by `python -m benchmarks.render` from `benchmarks/results.json`, measured on "
        f"{machine['date']} ({machine['cores']} cores, {machine['machine']}, Python "
        f"{machine['python']}).",
        "",
        "| benchmark | barnstorm | baseline (same run) | ratio | goal |",
        "|---|---|---|---|---|",
        *(row(result) for result in data["results"]),
        END,
    ]
    return "\n".join(lines)


def replace_table(readme: str, table: str) -> str:
    """``readme`` with the block between the markers replaced by ``table``."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the page has no {BEGIN} ... {END} block")
    return readme[:start] + table + readme[end + len(END) :]


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m benchmarks.render RESULTS.json docs/performance.md")
    results, readme = Path(sys.argv[1]), Path(sys.argv[2])
    table = render(json.loads(results.read_text()))
    readme.write_text(replace_table(readme.read_text(), table))


if __name__ == "__main__":
    main()
