"""barnstorm's own latency: how late its event loop runs what is due.

Every latency barnstorm measures passes through its event loop: a PUBACK that arrives
while the loop is busy generating the next tick waits, and the wait is counted as the
target's. A timer every ``PERIOD`` seconds measures that wait (how much later than asked
it wakes up), so every report can show the loop's lag beside the latencies it measured
and say when it is large enough to distort them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from simulator.metrics.metrics import Histogram

PERIOD = 0.025  # seconds between two probes: 40 a second, nothing a loop notices
#: a lag p99 from here on is worth a warning when the latencies measured are not far above.
WARN_P99_MS = 5.0
#: ... when the lag's p99 is at least this share of the measured latencies' p50,
WARN_SHARE = 0.1
#: ... or at least this, whatever the latencies.
ALWAYS_WARN_P99_MS = 100.0


class LoopLag:
    """The event loop's lag, sampled for the whole run and per time-series interval."""

    def __init__(self) -> None:
        self.histogram = Histogram()
        self.interval = Histogram()

    def record(self, seconds: float) -> None:
        self.histogram.record(seconds)
        self.interval.record(seconds)

    def take_interval(self) -> dict[str, float] | None:
        """p50/p99/max (ms) since the last call, for a time-series row."""
        interval, self.interval = self.interval, Histogram()
        if not interval.total:
            return None
        summary = interval.summary_ms()
        return {key: summary[key] for key in ("p50", "p99", "max")}

    def summary(self) -> dict[str, float] | None:
        """p50/p95/p99/max/mean (ms) over the run, or None before the first probe."""
        return self.histogram.summary_ms() if self.histogram.total else None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self._probe(), name="barnstorm-loop-lag")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + PERIOD
            await asyncio.sleep(PERIOD)
            self.record(max(loop.time() - due, 0.0))


#: targets whose delivery is a local write: no latency is measured, none can be distorted.
UNTIMED_TARGETS = frozenset({"file", "memory"})


def lag_warning(
    lag: dict[str, Any] | None, latency_p50_ms: float | None, target: str | None = None
) -> str | None:
    """One line when the loop's lag could distort the latencies measured, else None (also
    when the ``target`` kind measures none: a file)."""
    if not lag or lag["p99"] < WARN_P99_MS or target in UNTIMED_TARGETS:
        return None
    small_beside = latency_p50_ms is not None and lag["p99"] < WARN_SHARE * latency_p50_ms
    if small_beside and lag["p99"] < ALWAYS_WARN_P99_MS:
        return None  # large, but small beside what the target took
    return (
        f"barnstorm's own event loop ran up to {lag['p99']:,.1f} ms late (p99; max "
        f"{lag['max']:,.1f} ms): latencies it measured include that delay; spread the fleet "
        "over more processes (--processes N) or lower --speed"
    )
