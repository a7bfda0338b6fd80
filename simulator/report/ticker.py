"""A progress bar for a long job that counts things (farms built, rows listed): on a
terminal a bar with the count, the rate and the time left; in a log or a pipe a line after
a second, then every ten; nothing when disabled (``--quiet``). It runs on its own thread,
so that the counting code only adds to a number."""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from simulator.units import format_duration

FIRST_LINE_S, LINE_EVERY_S = 1.0, 10.0


class Ticker:
    """``with Ticker("building farms", 100_000) as tick: ... tick.advance(1)``."""

    def __init__(self, label: str, total: int, *, enabled: bool = True) -> None:
        self.label, self.total, self.enabled = label, max(total, 1), enabled
        self.done = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()
        self.console = Console(stderr=True)

    def advance(self, count: int = 1) -> None:
        self.done += count

    def restart(self, label: str, total: int) -> None:
        """The next stage of the same job (building, then listing)."""
        self.label, self.total, self.done = label, max(total, 1), 0
        self._started = time.monotonic()

    def line(self) -> str:
        elapsed = time.monotonic() - self._started
        share = min(self.done / self.total, 1.0)
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = f" · ETA {format_duration(elapsed / share * (1 - share))}" if 0 < share < 1 else ""
        return f"{self.label}: {self.done:,}/{self.total:,} ({share:.0%}) · {rate:,.0f}/s{eta}"

    def __enter__(self) -> Self:
        if self.enabled:
            self._thread = threading.Thread(target=self._show, daemon=True, name="ticker")
            self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _show(self) -> None:
        if not self.console.is_terminal:
            if self._stop.wait(FIRST_LINE_S):
                return
            while True:
                print(f"barnstorm: {self.line()}", file=sys.stderr, flush=True)
                if self._stop.wait(LINE_EVERY_S):
                    return
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}/s"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self.console, transient=True) as progress:
            task = progress.add_task(self.label, total=self.total, rate="0")
            while not self._stop.wait(0.25):
                elapsed = time.monotonic() - self._started
                rate = f"{self.done / elapsed:,.0f}" if elapsed > 0 else "0"
                progress.update(
                    task,
                    description=self.label,
                    total=self.total,
                    completed=self.done,
                    rate=rate,
                )
