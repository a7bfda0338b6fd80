"""Which client should publish MQTT 5: the measurements behind keeping gmqtt.

On one private Mosquitto, at QoS 1, messages settled per CPU-second of each whole process:
barnstorm over MQTT 5 (gmqtt), barnstorm over MQTT 3.1.1 (its own client, for scale), and
an aiomqtt loop over MQTT 5 (one client, a constant payload, a hundred publishes awaited
at a time, aiomqtt's and paho's defaults otherwise), which is what replacing gmqtt by
aiomqtt would start from.

    python -m benchmarks mqtt5
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from simulator.backend.broker import EmbeddedBroker

from .common import SIMULATE, check, ratio, run_measured, sample_payload


def bench_mqtt5(farms: int = 100, duration: str = "12h", count: int = 50_000) -> dict[str, Any]:
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

            gmqtt, settled5 = await asyncio.to_thread(barnstorm, "5")
            lean, settled311 = await asyncio.to_thread(barnstorm, "3.1.1")
            loop = check(
                await asyncio.to_thread(
                    run_measured,
                    [
                        *(sys.executable, "-m", "benchmarks.aiomqtt_loop", broker.host),
                        *(str(broker.port), "1", str(count), str(payload), "5"),
                    ],
                ),
                "the aiomqtt loop",
            )
            aiomqtt = json.loads(loop.stdout)["published"] / loop.cpu_s
        return {
            "name": "mqtt5",
            "what": f"QoS 1 to a private Mosquitto: {settled5:,} messages of {farms} farms at "
            f"--speed max over MQTT 5 ({settled311:,} over 3.1.1); the loop {count:,}",
            "barnstorm_mqtt5_gmqtt_msg_per_cpu_s": round(gmqtt),
            "barnstorm_mqtt311_lean_msg_per_cpu_s": round(lean),
            "baseline": "aiomqtt over MQTT 5, one client, a constant payload, 100 publishes "
            "awaited at a time",
            "baseline_msg_per_cpu_s": round(aiomqtt),
            "ratio": ratio(gmqtt, aiomqtt),
            "ratio_lean_to_gmqtt": ratio(lean, gmqtt),
        }

    with tempfile.TemporaryDirectory(prefix="barnstorm-mqtt5-") as folder:
        return asyncio.run(measure(Path(folder)))
