"""A scenario's network faults played on the run's simulated timeline, through the fault
proxy between barnstorm and its target (the proxy only knows faults; the scenario knows
when)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from simulator.engine.clock import Clock
from simulator.engine.scenarios import NetworkFault
from simulator.transports.faultproxy import FaultProxy


@contextlib.asynccontextmanager
async def play_faults(
    proxy: FaultProxy, faults: Sequence[NetworkFault], clock: Clock
) -> AsyncIterator[None]:
    """Apply each scenario fault on the run's simulated timeline while the block runs."""

    async def play() -> None:
        for fault in sorted(faults, key=lambda f: f.start):
            await clock.sleep_until(fault.start)
            proxy.apply(fault.fault, latency_ms=fault.latency_ms, bandwidth=fault.bandwidth)
            if fault.fault != "cut":
                await clock.sleep_until(fault.end)
                proxy.clear()

    task = asyncio.create_task(play(), name="barnstorm-network-faults")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
