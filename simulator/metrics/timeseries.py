"""The run over time: periodic snapshots for soak runs, trends and the HTML report's plots.

Every ``interval`` simulated seconds (every wall second at ``--speed max``) the recorder
takes one row of what happened since the last row::

    {"wall_s": 60.0, "sim": 1795830060.0, "sent": 1200, "delivered": 1198, "failed": 0,
     "dropped": 0, "in_flight": 2, "rate_per_s": 20.0, "failed_per_s": 0.0,
     "error_rate": 0.0, "p50_ms": 3.1, "p95_ms": 8.2, "p99_ms": 12.0, "connected": 1024,
     "cpu_pct": 12.5, "rss_mb": 96.3}

Counts are since the start; rates, error rate and percentiles are of the interval; CPU
and RSS are the simulator's own process. Rows go to a JSON-lines file as they come
(``--timeseries``: a soak run interrupted after hours keeps them) and into the report.
:func:`trends` compares the start of a run with its end and flags drift.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from simulator.errors import ConfigError
from simulator.metrics.loop_lag import LoopLag
from simulator.metrics.metrics import Metrics, bucket_percentile
from simulator.metrics.server_timing import ServerTimings
from simulator.redact import open_private

if TYPE_CHECKING:
    from simulator.engine.clock import Clock

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mb() -> float:
    """Resident memory of this process in MiB (Linux /proc; 0 where it is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * _PAGE / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


#: a row's running counts (totals so far, not the interval's): the last row of a run holds
#: the run's own, and a shard that has ended keeps adding its last ones to a merged series.
RUNNING_COUNTS = ("sent", "delivered", "failed", "dropped", "in_flight")


class Recorder:
    """Takes a row every interval while a run lasts."""

    def __init__(
        self,
        metrics: Metrics,
        clock: Clock,
        *,
        interval: float,
        path: Path | None = None,
    ) -> None:
        self.metrics = metrics
        self.clock = clock
        self.interval = interval
        self.path = path
        self.rows: list[dict[str, Any]] = []
        #: the run's event-loop lag: each row gets its interval's p50/p99/max.
        self.lag: LoopLag | None = None
        self._file: IO[bytes] | None = None
        self._previous = self._snapshot()

    def _snapshot(self) -> dict[str, Any]:
        totals = self.metrics.totals()
        return {
            "wall": time.monotonic(),
            "cpu": time.process_time(),
            "sent": totals.sent,
            "delivered": totals.acknowledged + totals.unconfirmed,
            "failed": totals.failed,
            "dropped": totals.dropped,
            "in_flight": totals.in_flight,
            "latency": list(totals.latency.counts),
            "latency_total": totals.latency.total,
            "latency_max": totals.latency.max,
        }

    def take(self, sim: float | None = None) -> dict[str, Any]:
        """One row: what happened since the last one, at the simulated instant ``sim`` it
        fell due (default: now)."""
        now = self._snapshot()
        before, self._previous = self._previous, now
        seconds = max(now["wall"] - before["wall"], 1e-9)
        window = [a - b for a, b in zip(now["latency"], before["latency"], strict=True)]
        timed = now["latency_total"] - before["latency_total"]
        delivered = now["delivered"] - before["delivered"]
        failed = now["failed"] + now["dropped"] - before["failed"] - before["dropped"]

        def percentile(q: float) -> float | None:
            if not timed:
                return None
            return round(bucket_percentile(window, timed, q, now["latency_max"]) * 1000, 3)

        row = {
            "wall_s": round(now["wall"] - self.metrics.started, 3),
            "sim": round(self.clock.now() if sim is None else sim, 3),
            "sent": now["sent"],
            "delivered": now["delivered"],
            "failed": now["failed"],
            "dropped": now["dropped"],
            "in_flight": now["in_flight"],
            "rate_per_s": round(delivered / seconds, 3),
            "failed_per_s": round(failed / seconds, 3),
            "error_rate": round(failed / (delivered + failed), 6) if delivered + failed else 0.0,
            "p50_ms": percentile(0.50),
            "p95_ms": percentile(0.95),
            "p99_ms": percentile(0.99),
            "connected": self.metrics.connections.connected,
            "cpu_pct": round((now["cpu"] - before["cpu"]) / seconds * 100, 2),
            "rss_mb": round(rss_mb(), 2),
        }
        lag = self.lag.take_interval() if self.lag is not None else None
        if lag is not None:
            row["loop_lag_ms"] = lag
        interval = ServerTimings()
        interval.merge(self.metrics.interval_timings.take())
        backend = interval.summary()
        if backend:  # the target's Server-Timing in this interval, by device type
            row["backend"] = backend
        self.rows.append(row)
        if self._file is not None:
            self._file.write(orjson.dumps(row) + b"\n")
            self._file.flush()
        return row

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        if self.path is not None:
            try:
                self._file = open_private(self.path, "wb")
            except OSError as exc:
                raise ConfigError(
                    "--timeseries", f"cannot write {self.path} ({exc.strerror})"
                ) from None
        async with asyncio.TaskGroup() as group:
            task = group.create_task(self._loop(), name="barnstorm-timeseries")
            try:
                yield
            finally:
                task.cancel()

    async def _loop(self) -> None:
        if self.clock.speed is None:  # --speed max: simulated time has no pace to follow
            while True:
                await asyncio.sleep(1.0)
                self.take()
        # A row per interval of simulated time, on a grid anchored at the run's start: the
        # shards of a parallel run take their rows at the same simulated instants, however
        # late each one started, so their series merge instant by instant.
        step = math.floor((self.clock.now() - self.clock.start) / self.interval) + 1
        while True:
            due = self.clock.start + step * self.interval
            await self.clock.sleep_until(due)
            self.take(due)
            step += 1

    def close(self) -> None:
        """The last row (the end of the run), and the file closed. It is left out only when
        the row before was taken a moment ago and already holds every running count of
        the end: what the run sent or settled after a snapshot is never left off the
        series (a run ends as a snapshot falls due, and its last messages follow it)."""
        end = self._snapshot()
        moved = any(end[key] != self._previous[key] for key in RUNNING_COUNTS)
        if not self.rows or moved or end["wall"] - self._previous["wall"] > 0.05:
            self.take()
        if self._file is not None:
            self._file.close()
            self._file = None


#: metric -> (direction that is bad, relative change flagged, absolute floor for the change)
DRIFT_RULES = {
    "p95_ms": ("up", 0.25, 5.0),
    "p99_ms": ("up", 0.25, 5.0),
    "error_rate": ("up", 0.0, 0.01),
    "rate_per_s": ("down", 0.10, 0.0),
    "rss_mb": ("up", 0.10, 5.0),
    "cpu_pct": ("up", 0.50, 10.0),
}
#: Wall seconds the judged rows must span before a change is called drift: over a few
#: seconds, the median of a third of the rows is a handful of noisy samples (a 10-second
#: run moved its p99 by 37 %), and drift is what a soak shows over minutes and hours.
MIN_DRIFT_SPAN = 120.0


def trends(rows: list[dict[str, Any]], warmup: float = 0.1) -> list[dict[str, Any]]:
    """Start against end of a run, after the warm-up share of its rows: the median of the
    first third against the median of the last third per metric, flagged when it drifted
    the bad way by more than the rule's share (and floor), over at least MIN_DRIFT_SPAN."""
    kept = rows[int(len(rows) * warmup) :]
    if len(kept) < 6:
        return []
    long_enough = kept[-1]["wall_s"] - kept[0]["wall_s"] >= MIN_DRIFT_SPAN
    third = len(kept) // 3
    found = []
    for metric, (bad, share, floor) in DRIFT_RULES.items():
        first = [r[metric] for r in kept[:third] if r.get(metric) is not None]
        last = [r[metric] for r in kept[-third:] if r.get(metric) is not None]
        if not first or not last:
            continue
        start, end = statistics.median(first), statistics.median(last)
        change = end - start
        relative = change / start if start else (0.0 if change == 0 else float("inf"))
        worse = change > 0 if bad == "up" else change < 0
        flagged = long_enough and worse and abs(change) > floor and abs(relative) > share
        found.append(
            {
                "metric": metric,
                "start": round(start, 3),
                "end": round(end, 3),
                "change_pct": None if start == 0 else round(relative * 100, 1),
                "drift": flagged,
            }
        )
    return found
