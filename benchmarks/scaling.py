"""Every core: the same fleet published as fast as it goes to a private Mosquitto, QoS 1,
by one process and by N (``--processes N``, the fleet split by farm), in the same run.
The baseline is barnstorm's own one process; the ideal ratio is N."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from simulator.backend.broker import EmbeddedBroker

from .common import SIMULATE, check, ratio, run_measured


def bench_scaling(farms: int = 200, duration: str = "6h") -> dict[str, Any]:
    cores = os.cpu_count() or 1
    counts = sorted({1, *(n for n in (2, 4, 8) if n <= cores)})

    async def measure(folder: Path) -> dict[str, Any]:
        rates: dict[int, float] = {}
        accounted: dict[int, str] = {}
        async with EmbeddedBroker("mosquitto") as broker:
            for processes in counts:
                report = folder / f"scaling-{processes}.json"
                run = await asyncio.to_thread(
                    run_measured,
                    [
                        *SIMULATE,
                        *("--farms", str(farms), "--mqtt", broker.url, "--qos", "1"),
                        *("--speed", "max", "--duration", duration, "--start", "2026-01-01"),
                        *("--connect-rate", "0", "--processes", str(processes)),
                        *("--quiet", "--report", str(report), "--allow-loss"),
                    ],
                )
                check(run, f"barnstorm with --processes {processes}")
                totals = json.loads(report.read_text())["totals"]
                settled = totals["acknowledged"] + totals["unconfirmed"]
                rates[processes] = settled / run.wall_s
                accounted[processes] = f"{settled:,} of {totals['sent']:,} acknowledged"
        most = counts[-1]
        return {
            "name": "scaling",
            "what": f"{farms} farms over {duration}, speed max, QoS 1, to a private Mosquitto "
            f"on this {cores}-core machine (the broker shares the cores)",
            "barnstorm_msg_per_s": round(rates[most]),
            "barnstorm_processes": most,
            "barnstorm_accounted": accounted[most],
            "baseline": "the same run in one process (--processes 1)",
            "baseline_msg_per_s": round(rates[1]),
            "ratio": ratio(rates[most], rates[1]),
            "ideal_ratio": most,
            "msg_per_s_by_processes": {str(n): round(rate) for n, rate in rates.items()},
        }

    with tempfile.TemporaryDirectory(prefix="barnstorm-scaling-") as folder:
        return asyncio.run(measure(Path(folder)))
