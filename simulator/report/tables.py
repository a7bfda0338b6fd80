"""Terminal tables that fit the width they are printed in: an 80-column CI log as well as a
wide terminal. A table too wide for its console is folded into several, each repeating the
first column (the device type, the step), never squeezed into ``GET /api/farms…``: no name
and no figure is cut."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

#: what a column costs beside its text: its padding and the rule between two columns.
_GUTTER = 3
#: the width of a log that is not a terminal, unless ``COLUMNS`` says otherwise.
LOG_WIDTH = 80


def log_console(stream: TextIO) -> Console:
    """A console for ``stream``: the terminal's width, or, in a log or a pipe, ``COLUMNS``
    (default 80), the width a CI log is read in."""
    console = Console(file=stream)
    if console.is_terminal:
        return console
    try:
        width = int(os.environ.get("COLUMNS", LOG_WIDTH))
    except ValueError:
        width = LOG_WIDTH
    return Console(file=stream, width=max(width, 40))


def _cell_width(cell: str) -> int:
    return max((Text.from_markup(line).cell_len for line in cell.split("\n")), default=0)


def folded(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int,
    *,
    title: str | None = None,
    left: int = 1,
) -> list[Table]:
    """``rows`` under ``headers`` as tables that each fit in ``width`` columns: the first
    column in every one, the others in order, as many to a table as fit. The first
    ``left`` columns are left-aligned, the rest (figures) right-aligned. Cells are rich
    markup: escape a name that holds brackets (``GET /api/farms/[farm_id]``)."""
    widths = [
        max([_cell_width(header), *(_cell_width(row[i]) for row in rows)])
        for i, header in enumerate(headers)
    ]
    groups: list[list[int]] = []
    used = widths[0]
    for index in range(1, len(headers)):
        if not groups or used + _GUTTER + widths[index] > width:
            groups.append([])
            used = widths[0]
        groups[-1].append(index)
        used += _GUTTER + widths[index]
    tables = []
    for number, group in enumerate(groups or [[]]):
        table = Table(
            show_edge=False,
            pad_edge=False,
            title=title if number == 0 else None,
            title_justify="left",
        )
        for index in [0, *group]:
            table.add_column(
                headers[index],
                justify="left" if index < left else "right",
                overflow="fold",
                min_width=min(widths[index], width // 2),
            )
        for row in rows:
            table.add_row(*(row[index] for index in [0, *group]))
        tables.append(table)
    return tables
