"""The realism page's figures (docs/realism.md): rerun from the commands it shows, they match its
table, and they match what real cough-monitor exports show."""

from __future__ import annotations

import importlib.util
import re
from types import ModuleType

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow  # runs simulate twice: a seeded year, then stats on it

PREFIX = "cough_monitor/daily "


def _realism() -> ModuleType:
    spec = importlib.util.spec_from_file_location("realism", ROOT / "docs" / "realism.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parse(table: str) -> dict[str, tuple[float, str]]:
    """{figure: (number, unit)} of a `simulate stats --markdown` table."""
    out: dict[str, tuple[float, str]] = {}
    for line in table.splitlines()[2:]:
        key, value = (cell.strip() for cell in line.strip("|").split("|"))
        match = re.fullmatch(r"([-\d.,]+)\s*(%|d|h|m|s)?", value)
        assert match, f"{key}: {value}"
        out[key.removeprefix(PREFIX)] = (float(match[1].replace(",", "")), match[2] or "")
    return out


@pytest.fixture(scope="module")
def figures() -> tuple[dict[str, tuple[float, str]], dict[str, tuple[float, str]]]:
    """(the realism page's table, the same commands' output now)."""
    realism = _realism()
    readme = (ROOT / "docs" / "realism.md").read_text(encoding="utf-8")
    return _parse(realism.table(readme)), _parse(realism.run(readme))


def test_a_rerun_gives_the_readmes_figures(
    figures: tuple[dict[str, tuple[float, str]], dict[str, tuple[float, str]]],
) -> None:
    """Every figure of the realism page's table, rerun: shares within 1.5 percentage points,
    other figures within 15 %."""
    written, now = figures
    assert set(written) == set(now)
    for key, (value, unit) in written.items():
        again, _ = now[key]
        if unit == "%":
            assert abs(again - value) <= 1.5, f"{key}: docs {value} %, now {again} %"
        else:
            assert abs(again - value) <= 0.15 * abs(value), f"{key}: docs {value}, now {again}"


def test_the_simulated_year_scores_like_real_barns(
    figures: tuple[dict[str, tuple[float, str]], dict[str, tuple[float, str]]],
) -> None:
    """What real exports show (docs/realism.md): a median of about 96; about one
    device-day in nine at 80–89; about 4 % yellow, 5 % red, 10–13 % blue; spells below 60
    of a few days that rarely pass three weeks; about 3–4 outbreaks per monitor-year, of
    which the score shows most as episodes below 60."""
    _, now = figures

    def share(key: str) -> float:
        return now[key][0]

    assert 95 <= now["rehs p50"][0] <= 97
    assert abs(share("rehs band 80–<90") - 100 / 9) <= 1.5
    assert abs(share("rehs_color=yellow") - 4.0) <= 1.5
    assert abs(share("rehs_color=red") - 5.0) <= 1.5
    assert 10.0 - 1.5 <= share("rehs_color=blue") <= 13.0
    assert now["rehs below 60 spell median"][0] <= 7
    assert now["rehs below 60 spell mean"][0] <= 8
    assert now["rehs below 60 spell p90"][0] <= 14
    assert share("rehs below 60 spells over 21 days") <= 6.0
    assert 2.0 <= now["rehs below 60 episodes per device-year"][0] <= 4.0
