"""MQTT 5 through barnstorm's own client against its 3.1.1, in the same run.

On one private Mosquitto, at QoS 1, messages settled per CPU-second of each whole process:
barnstorm over MQTT 5 and barnstorm over MQTT 3.1.1 (the same client, the same fleet), in
alternating rounds, each side's figure the median of its rounds; the goal is MQTT 5 at
0.9x of 3.1.1 or better. Beside them, gmqtt (the MQTT 5 client barnstorm used before) and
aiomqtt, each as a loop of its own publishing one constant payload over MQTT 5 with a
hundred publishes in flight: what an application on those clients starts from.

    python -m benchmarks mqtt5
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from simulator.backend.broker import EmbeddedBroker

from .common import SIMULATE, check, ratio, run_measured, sample_payload


def bench_mqtt5(
    farms: int = 100, duration: str = "12h", count: int = 50_000, rounds: int = 3
) -> dict[str, Any]:
    async def measure(folder: Path) -> dict[str, Any]:
        payload = sample_payload(folder, "cough_monitor")
        report = folder / "report.json"
        async with EmbeddedBroker("mosquitto") as broker:

            def barnstorm(version: str) -> tuple[float, int]:
                measured = check(
                    run_measured(
                        [
                            *SIMULATE,
                            *("--farms", str(farms), "--mqtt", broker.url, "--qos", "1"),
                            *("--mqtt-version", version, "--speed", "max"),
                            *("--duration", duration, "--start", "2026-01-01"),
                            *("--connect-rate", "0", "--quiet", "--report", str(report)),
                            "--allow-loss",
                        ]
                    ),
                    f"barnstorm over MQTT {version}",
                )
                acknowledged = int(json.loads(report.read_text())["totals"]["acknowledged"])
                return acknowledged / measured.cpu_s, acknowledged

            def loop(module: str, *extra: str) -> float:
                run = check(
                    run_measured(
                        [
                            *(sys.executable, "-m", f"benchmarks.{module}", broker.host),
                            *(str(broker.port), "1", str(count), str(payload), *extra),
                        ]
                    ),
                    f"the {module}",
                )
                return float(json.loads(run.stdout)["published"]) / run.cpu_s

            fives: list[float] = []
            threes: list[float] = []
            settled: dict[str, int] = {}
            for _ in range(rounds):
                rate, settled["5"] = await asyncio.to_thread(barnstorm, "5")
                fives.append(rate)
                rate, settled["3.1.1"] = await asyncio.to_thread(barnstorm, "3.1.1")
                threes.append(rate)
            gmqtt = await asyncio.to_thread(loop, "gmqtt_loop")
            aiomqtt = await asyncio.to_thread(loop, "aiomqtt_loop", "5")
        five, three = statistics.median(fives), statistics.median(threes)
        return {
            "name": "mqtt5",
            "what": f"QoS 1 to a private Mosquitto: {settled['5']:,} messages of {farms} farms "
            f"at --speed max over MQTT 5 and {settled['3.1.1']:,} over 3.1.1, {rounds} "
            f"alternating rounds (medians); the loops {count:,} each",
            "barnstorm_mqtt5_msg_per_cpu_s": round(five),
            "baseline": "barnstorm over MQTT 3.1.1, the same client and fleet",
            "baseline_msg_per_cpu_s": round(three),
            "ratio": ratio(five, three),
            "goal": 0.9,
            "rounds_mqtt5": [round(r) for r in fives],
            "rounds_mqtt311": [round(r) for r in threes],
            "gmqtt_loop_msg_per_cpu_s": round(gmqtt),
            "aiomqtt_loop_msg_per_cpu_s": round(aiomqtt),
            "ratio_to_gmqtt_loop": ratio(five, gmqtt),
        }

    with tempfile.TemporaryDirectory(prefix="barnstorm-mqtt5-") as folder:
        return asyncio.run(measure(Path(folder)))
