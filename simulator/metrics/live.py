"""The live progress view: what a run is doing while it runs.

On a terminal it is a small table redrawn twice a second (rich); otherwise (CI logs,
pipes) a plain line after a second, then every ten. A history run shows how far it is,
the bytes written and the time left. Both read the same metrics as the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table

from simulator.metrics.metrics import Metrics
from simulator.units import format_duration, iso_utc

if TYPE_CHECKING:
    from simulator.engine.clock import Clock

#: in a log: a line after a second, then every ten.
_FIRST_LINE, _LINE_EVERY = 1.0, 10.0


class LiveView:
    def __init__(
        self,
        metrics: Metrics,
        window: tuple[float, float],
        clock: Clock,
        console: Console,
        *,
        enabled: bool = True,
        output: Path | None = None,
    ) -> None:
        self.metrics = metrics
        #: the run's simulated (start, end).
        self.start, self.end = window
        self.clock = clock
        self.console = console
        self.enabled = enabled
        #: a history file, whose size is the bytes written so far.
        self.output = output
        self._started = time.monotonic()
        self._last_done = 0
        self._last_time = 0.0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        if not self.enabled:
            yield
            return
        async with asyncio.TaskGroup() as group:
            task = group.create_task(self._show(), name="barnstorm-live-view")
            try:
                yield
            finally:
                task.cancel()

    def _rate(self) -> float:
        totals = self.metrics.totals()
        done = totals.acknowledged + totals.unconfirmed
        now = self.metrics.elapsed()
        rate = (done - self._last_done) / (now - self._last_time) if now > self._last_time else 0.0
        self._last_done, self._last_time = done, now
        return rate

    def headline(self) -> str:
        totals = self.metrics.totals()
        simulated = min(self.clock.now(), self.end) - self.start
        total = self.end - self.start
        sim = f"sim {iso_utc(min(self.clock.now(), self.end))[:19]} " + (
            f"({format_duration(simulated)}/{format_duration(total)})"
        )
        if self.output is not None:  # history: how far, how much written, how long still
            done = simulated / total if total > 0 else 0.0
            elapsed = time.monotonic() - self._started
            written = self.output.stat().st_size if self.output.exists() else 0
            eta = f" · ETA {format_duration(elapsed / done * (1 - done))}" if 0 < done < 1 else ""
            return f"{sim} {done:.0%} · {totals.sent:,} sent · {written / 1e6:,.1f} MB written{eta}"
        return (
            f"{sim} · "
            f"{self.metrics.connections.connected:,} connected · "
            f"{totals.sent:,} sent · {totals.acknowledged:,} acked · "
            f"{totals.failed + totals.dropped:,} failed/dropped · "
            f"p95 {totals.latency.percentile(0.95) * 1000:,.1f} ms"
        )

    def _table(self) -> RenderableType:
        rate = self._rate()
        table = Table(show_edge=False, pad_edge=False, title_justify="left")
        for column in ("device type", "sent", "acked", "failed", "dropped", "in flight", "p95 ms"):
            table.add_column(column, justify="left" if column == "device type" else "right")
        for name, counts in zip(self.metrics.type_names, self.metrics.by_type, strict=True):
            if counts.sent:
                table.add_row(
                    name,
                    f"{counts.sent:,}",
                    f"{counts.acknowledged:,}",
                    f"{counts.failed:,}",
                    f"{counts.dropped:,}",
                    f"{counts.in_flight:,}",
                    f"{counts.latency.percentile(0.95) * 1000:,.1f}",
                )
        return Group(f"[bold]barnstorm[/] {self.headline()} · {rate:,.0f} msg/s", table)

    async def _show(self) -> None:
        if self.console.is_terminal:
            with Live(
                self._table(), console=self.console, refresh_per_second=2, transient=True
            ) as live:
                while True:
                    await asyncio.sleep(0.5)
                    live.update(self._table())
        else:
            await asyncio.sleep(_FIRST_LINE)
            while True:
                print(f"barnstorm: {self.headline()}", file=sys.stderr, flush=True)
                await asyncio.sleep(_LINE_EVERY)
