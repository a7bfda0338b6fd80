"""What ``--verify`` costs: the same run with and without its observer.

On one private Mosquitto, at QoS 1 and real-time pacing fast enough to matter (100 farms
at --speed 300: about 1,400 messages a second), CPU-seconds per thousand messages of the
whole run (barnstorm and its children, the observer process included) with --verify and
without, in alternating rounds, medians; beside them the observer's own CPU as it reports
it. The figure is the ratio: what a run pays for an independent check of delivery.

    python -m benchmarks verify
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from simulator.backend.broker import EmbeddedBroker

from .common import SIMULATE, check, ratio, run_measured


def bench_verify(
    farms: int = 100, speed: str = "300", duration: str = "2h", rounds: int = 3
) -> dict[str, Any]:
    async def measure(folder: Path) -> dict[str, Any]:
        report = folder / "report.json"
        async with EmbeddedBroker("mosquitto") as broker:

            def run(verify: bool) -> tuple[float, int, float]:
                measured = check(
                    run_measured(
                        [
                            *SIMULATE,
                            *("--farms", str(farms), "--mqtt", broker.url, "--qos", "1"),
                            *("--speed", speed, "--duration", duration),
                            *("--start", "2026-01-01", "--quiet", "--report", str(report)),
                            *(["--verify"] if verify else []),
                        ]
                    ),
                    "barnstorm with --verify" if verify else "barnstorm",
                )
                data = json.loads(report.read_text())
                messages = int(data["totals"]["acknowledged"])
                observer = float((data.get("verify") or {}).get("observer", {}).get("cpu_s") or 0)
                return measured.cpu_s / messages * 1000, messages, observer

            plain: list[float] = []
            checked: list[float] = []
            observer_cpu: list[float] = []
            messages = 0
            for _ in range(rounds):
                plain.append((await asyncio.to_thread(run, False))[0])
                cost, messages, observer = await asyncio.to_thread(run, True)
                checked.append(cost)
                observer_cpu.append(observer)
        without, with_verify = statistics.median(plain), statistics.median(checked)
        return {
            "name": "verify",
            "what": f"QoS 1 to a private Mosquitto: {messages:,} messages of {farms} farms at "
            f"--speed {speed}, {rounds} alternating rounds with and without --verify (medians)",
            "barnstorm_verify_cpu_ms_per_1000_msg": round(with_verify * 1000, 1),
            "baseline": "the same run without --verify",
            "baseline_cpu_ms_per_1000_msg": round(without * 1000, 1),
            "ratio": ratio(with_verify, without),
            "observer_cpu_s": round(statistics.median(observer_cpu), 3),
        }

    with tempfile.TemporaryDirectory(prefix="barnstorm-verify-") as folder:
        return asyncio.run(measure(Path(folder)))
