"""Progress of a run over several processes (``--processes N``, history shards): each
worker writes its running counts into a slot of a small shared array every quarter second,
and the parent shows them merged, from the first second on. On a terminal: a bar of
simulated time with the rate, the ETA and, for history, the bytes written; in a log or a
pipe, a line after a second and then every ten. ``--quiet`` shows nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from ctypes import c_double
from multiprocessing.context import SpawnContext
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.text import Text

from simulator.units import format_duration, iso_utc

#: a worker's slot: sent, delivered, failed and dropped, connected, simulated now, p95 ms.
FIELDS = ("sent", "delivered", "failed", "connected", "sim", "p95_ms")
_WIDTH = len(FIELDS)
#: a line in a log: the first after a second, then every ten.
FIRST_LINE_S, LINE_EVERY_S = 1.0, 10.0

#: the worker's view of the board (set in each worker process by :func:`attach`).
_BOARD: Any = None


def new_board(context: SpawnContext, processes: int) -> Any:
    """The shared array of ``processes`` slots, all zero (no lock: one writer per slot)."""
    return context.Array(c_double, processes * _WIDTH, lock=False)


def attach(board: Any) -> None:
    """In a worker (the pool's initializer): the board its runs write to."""
    global _BOARD
    _BOARD = board


def write_slot(index: int, values: Sequence[float]) -> None:
    """A worker's running counts into its slot (a no-op outside a worker pool)."""
    if _BOARD is None:
        return
    base = index * _WIDTH
    for offset, value in enumerate(values):
        _BOARD[base + offset] = float(value)


async def publish(index: int, snapshot: Callable[[], Sequence[float] | None]) -> None:
    """Write ``snapshot()`` into the slot every quarter second until cancelled (and once
    more then: the last counts)."""
    try:
        while True:
            values = snapshot()
            if values is not None:
                write_slot(index, values)
            await asyncio.sleep(0.25)
    finally:
        values = snapshot()
        if values is not None:
            write_slot(index, values)


class BoardView:
    """The parent's merged view of the board."""

    def __init__(
        self,
        board: Any,
        processes: int,
        window: tuple[float, float],
        console: Console,
        *,
        enabled: bool,
        files: Sequence[Path] = (),
    ) -> None:
        self.board, self.processes = board, processes
        self.start, self.end = window
        self.console, self.enabled = console, enabled
        #: history's part files, whose sizes are the bytes written.
        self.files = list(files)
        self.started = time.monotonic()

    def merged(self) -> dict[str, float]:
        slots = [[self.board[i * _WIDTH + j] for j in range(_WIDTH)] for i in range(self.processes)]
        sims = [slot[4] for slot in slots if slot[4] > 0]
        return {
            "sent": sum(slot[0] for slot in slots),
            "delivered": sum(slot[1] for slot in slots),
            "failed": sum(slot[2] for slot in slots),
            "connected": sum(slot[3] for slot in slots),
            "sim": min(sims) if len(sims) == self.processes else self.start,
            "p95_ms": max((slot[5] for slot in slots), default=0.0),
        }

    def written(self) -> int:
        total = 0
        for path in self.files:
            with contextlib.suppress(OSError):
                total += path.stat().st_size
        return total

    def fraction(self, figures: dict[str, float]) -> float:
        span = self.end - self.start
        return min(max((figures["sim"] - self.start) / span, 0.0), 1.0) if span > 0 else 0.0

    def line(self) -> str:
        """One line of where the run is: for a log, and beside the bar."""
        figures = self.merged()
        elapsed = time.monotonic() - self.started
        done = self.fraction(figures)
        parts = [
            f"{self.processes} processes",
            f"sim {iso_utc(figures['sim'])[:19]} "
            f"({format_duration(figures['sim'] - self.start)}/"
            f"{format_duration(self.end - self.start)}, {done:.0%})",
            f"{int(figures['sent']):,} sent",
            f"{figures['delivered'] / elapsed if elapsed > 0 else 0:,.0f} msg/s",
        ]
        if self.files:
            parts.append(f"{self.written() / 1e6:,.1f} MB written")
        else:
            parts += [
                f"{int(figures['connected']):,} connected",
                f"{int(figures['failed']):,} failed/dropped",
                f"p95 {figures['p95_ms']:,.1f} ms (worst process)",
            ]
        if 0.0 < done < 1.0:
            parts.append(f"ETA {format_duration(elapsed / done * (1 - done))}")
        return " · ".join(parts)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Show the board while the body runs."""
        if not self.enabled:
            yield
            return
        task = asyncio.create_task(self._show(), name="barnstorm-board")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _show(self) -> None:
        if not self.console.is_terminal:
            await asyncio.sleep(FIRST_LINE_S)
            while True:
                print(f"barnstorm: {self.line()}", file=sys.stderr, flush=True)
                await asyncio.sleep(LINE_EVERY_S)
        with Live(console=self.console, refresh_per_second=2, transient=True) as live:
            while True:
                bar = ProgressBar(total=1.0, completed=self.fraction(self.merged()), width=40)
                live.update(Group(bar, Text(f"barnstorm: {self.line()}", overflow="fold")))
                await asyncio.sleep(0.5)
