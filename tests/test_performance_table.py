"""The Performance page's table (docs/performance.md) is the rendering of the measured
results, and the renderer judges goals from the figures, never from hand-written text."""

from __future__ import annotations

import json
from typing import Any

import pytest

from benchmarks.render import BEGIN, END, goal_verdict, render, replace_table, row
from tests.helpers import ROOT

MACHINE = {"date": "2026-11-30", "cores": 2, "python": "3.11.7", "machine": "x86_64"}


def _publish(ratio: float) -> dict[str, Any]:
    return {
        "name": "publish-qos0",
        "what": "377,000 messages of 100 farms",
        "barnstorm_msg_per_cpu_s": 55_813,
        "barnstorm_accounted": "377,000 of 377,000 handed over",
        "baseline": "paho-mqtt, tight loop",
        "baseline_msg_per_cpu_s": 22_772,
        "ratio": ratio,
        "goal": ">= 3",
        "locust_mqtt_user_msg_per_cpu_s": 11_991,
        "ratio_to_locust": 4.655,
    }


def test_a_goal_is_judged_from_the_ratio_or_its_own_verdict() -> None:
    """ ">= 3" is met by a ratio of 3.6 and not by 2.45; a row with goal_met uses that; a
    row without a goal shows none."""
    assert goal_verdict(_publish(3.6)) == ">= 3: **met**"
    assert goal_verdict(_publish(2.45)) == ">= 3: **not met**"
    assert goal_verdict({"goal": "< 0.5 s", "goal_met": False}) == "< 0.5 s: **not met**"
    assert goal_verdict({"ratio": 1.0}) == ""


def test_a_row_shows_both_figures_with_units_and_the_baseline_it_came_from() -> None:
    """Barnstorm's figure and the baseline's, each with its unit, what the baseline is,
    Locust's own figure beside it, the ratio and the verdict."""
    text = row(_publish(2.451))
    cells = [cell.strip() for cell in text.strip("|").split("|")]
    assert cells[0].startswith("`publish-qos0`")
    assert "**55,813 msg per CPU-second**" in cells[1]
    assert "377,000 of 377,000 handed over" in cells[1]
    assert cells[2].startswith("paho-mqtt, tight loop: **22,772 msg per CPU-second**")
    assert "Locust's own MQTT user: 11,991 msg per CPU-second (ratio 4.66)" in cells[2]
    assert cells[3] == "2.45"
    assert cells[4] == ">= 3: **not met**"


def test_only_the_marked_block_is_replaced() -> None:
    """The text around the markers stays as it was, and rendering twice changes nothing."""
    table = render({"machine": MACHINE, "results": [_publish(3.6)]})
    readme = f"intro\n{BEGIN}\nold table\n{END}\noutro\n"
    once = replace_table(readme, table)
    assert once.startswith("intro\n")
    assert once.endswith("\noutro\n")
    assert "old table" not in once
    assert replace_table(once, table) == once
    with pytest.raises(ValueError, match="performance:begin"):
        replace_table("no markers here", table)


def test_the_performance_page_holds_the_rendering_of_the_recorded_results() -> None:
    """docs/performance.md's table is exactly `python -m benchmarks.render
    benchmarks/results.json docs/performance.md`: edit the measurement, not the text."""
    results = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    page = (ROOT / "docs" / "performance.md").read_text()
    assert render(results) in page
