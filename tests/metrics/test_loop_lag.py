"""barnstorm's own event-loop lag: measured while the loop works, and a warning only when
it is large enough to distort the latencies measured."""

from __future__ import annotations

import asyncio
import time

from simulator.metrics.loop_lag import LoopLag, lag_warning


async def test_a_blocked_loop_shows_as_lag() -> None:
    """Idle, the loop wakes its probe on time; blocked for 120 ms by a busy task (as a big
    tick would), the probe wakes that much late, and the interval's figures say so once."""
    lag = LoopLag()
    async with lag.running():
        await asyncio.sleep(0.3)
        idle = lag.summary()
        assert lag.take_interval() is not None
        time.sleep(0.12)  # noqa: ASYNC251 (on purpose: the loop is busy, nothing else runs)
        await asyncio.sleep(0.1)
    assert idle is not None
    assert idle["p50"] < 20.0
    busy = lag.summary()
    assert busy is not None
    assert busy["max"] >= 90.0
    interval = lag.take_interval()
    assert interval is not None
    assert interval["max"] >= 90.0
    assert lag.take_interval() is None


def test_the_warning_speaks_when_the_lag_matters() -> None:
    """A p99 under 5 ms never warns; 20 ms warns beside latencies of 10 ms, not beside
    latencies of a second; 150 ms warns whatever the latencies."""
    small = {"p50": 0.5, "p99": 3.0, "max": 9.0}
    medium = {"p50": 2.0, "p99": 20.0, "max": 40.0}
    large = {"p50": 20.0, "p99": 150.0, "max": 300.0}
    assert lag_warning(small, 1.0) is None
    assert lag_warning(None, 1.0) is None
    warning = lag_warning(medium, 10.0)
    assert warning is not None
    assert "20.0 ms late (p99; max 40.0 ms)" in warning
    assert lag_warning(medium, 1000.0) is None
    assert lag_warning(large, 5000.0) is not None
    assert lag_warning(medium, None) is not None
    assert lag_warning(large, None, "mqtt") is not None
    assert lag_warning(large, None, "http") is not None


def test_no_warning_where_no_latency_is_measured() -> None:
    """History written to a file at speed max runs its loop hundreds of milliseconds late,
    and that distorts nothing: its messages have no latency, and no warning sends the user
    after --processes for it."""
    large = {"p50": 300.0, "p99": 400.0, "max": 500.0}
    assert lag_warning(large, None, "file") is None
    assert lag_warning(large, None, "memory") is None
