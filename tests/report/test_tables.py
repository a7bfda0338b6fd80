"""Tables read in an 80-column CI log as in a wide terminal: a table too wide for its
console folds into several that repeat the first column, and no name or figure is cut."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from simulator.report.tables import folded
from tests.helpers import ROOT

HEADERS = ["endpoint", *(f"figure {i}" for i in range(10))]
ROWS = [
    ["GET /api/farms/[farm_id]/rooms/[room_id]", *(f"{i * 1234.5:,.1f}" for i in range(10))],
    ["GET /api/farms/[farm_id]", *("7" for _ in range(10))],
]


def _render(width: int) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None)
    cells = [[escape(cell) for cell in row] for row in ROWS]  # markup: a name's [farm_id]
    for table in folded(HEADERS, cells, width):
        console.print(table)
    return out.getvalue()


def test_a_wide_table_folds_to_80_columns_and_cuts_nothing() -> None:
    """At 80 columns: every line fits, every header, name and figure is there whole, and
    each folded part starts with the names again."""
    text = _render(80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    for cell in [*HEADERS, *(cell for row in ROWS for cell in row)]:
        assert cell in text, cell
    assert text.count("GET /api/farms/[farm_id]/rooms/[room_id]") >= 2  # one per part


def test_a_wide_terminal_gets_one_table() -> None:
    """At 200 columns the same table is one table: folding only where it must."""
    assert _render(200).count("endpoint") == 1


def test_the_run_summary_fits_a_ci_log(tmp_path: Path) -> None:
    """A run's summary printed to a pipe (a CI log) fits 80 columns with no figure cut,
    and COLUMNS widens it when the log is wider."""
    command = [
        *(sys.executable, "-m", "simulator", "--farms", "2", "--duration", "1h"),
        *("--speed", "max", "--output", str(tmp_path / "h.jsonl"), "--quiet"),
    ]
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    narrow = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    lines = narrow.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, narrow.stdout
    assert "…" not in narrow.stdout
    assert "p99 ms" in narrow.stdout
    assert "cough_monitor" in narrow.stdout
    wide = subprocess.run(
        command,
        cwd=ROOT,
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert wide.stdout.count("device type") == 1
    assert narrow.stdout.count("device type") == 2
