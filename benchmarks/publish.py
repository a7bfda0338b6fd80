"""Publish throughput: barnstorm's engine at ``--speed max`` against a private Mosquitto,
beside a plain paho-mqtt loop and Locust's own MQTT user, per CPU-second of each."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from simulator.backend.broker import EmbeddedBroker

from .common import SIMULATE, Measured, check, ratio, run_measured, sample_payload


def bench_publish(
    qos: int = 1,
    farms: int = 100,
    duration: str = "12h",
    locust_seconds: int = 20,
    rounds: int = 5,
) -> dict[str, Any]:
    """Messages per CPU-second: barnstorm (whole process: start-up, fleet, generation,
    encoding, accounting) vs. paho publishing a constant payload vs. Locust's MQTT user.

    barnstorm and paho (each of its windows) run in ``rounds`` alternating rounds, and each
    side's figure is its median: a noisy minute hurts both sides alike, and neither side's
    figure is the luckiest of several tries while the other's is one try."""

    async def measure(folder: Path) -> dict[str, Any]:
        payload = sample_payload(folder, "cough_monitor")
        async with EmbeddedBroker("mosquitto") as broker:
            report = folder / "report.json"

            def barnstorm(length: str) -> tuple[Measured, dict[str, Any]]:
                measured = run_measured(
                    [
                        *SIMULATE,
                        *("--farms", str(farms), "--mqtt", broker.url, "--qos", str(qos)),
                        *("--speed", "max", "--duration", length, "--start", "2026-01-01"),
                        *("--connect-rate", "0", "--quiet", "--report", str(report)),
                        "--allow-loss",
                    ]
                )
                check(measured, "barnstorm")
                return measured, json.loads(report.read_text())["totals"]

            # paho as its authors would run it: no on_publish callback, and at QoS 1 each
            # of its in-flight windows (its default 20, 100, 1000); the best one counts.
            count = 50_000 if qos else 200_000
            windows = (20, 100, 1000) if qos else (20,)

            def paho_loop(window: int) -> tuple[Measured, dict[str, Any]]:
                run = check(
                    run_measured(
                        [
                            *(sys.executable, "-m", "benchmarks.paho_loop", broker.host),
                            *(str(broker.port), str(qos), str(count), str(payload)),
                            str(window),
                        ],
                    ),
                    f"the paho loop (window {window})",
                )
                return run, json.loads(run.stdout)

            ours: list[tuple[Measured, dict[str, Any]]] = []
            theirs: dict[int, list[tuple[Measured, dict[str, Any]]]] = {w: [] for w in windows}
            for _ in range(rounds):
                ours.append(await asyncio.to_thread(barnstorm, duration))
                for window in windows:
                    theirs[window].append(await asyncio.to_thread(paho_loop, window))
            # The same run cut to one simulated second: start-up (imports, fleet, connections).
            start, start_totals = await asyncio.to_thread(barnstorm, "1s")
            env = {
                **os.environ,
                "BENCH_HOST": broker.host,
                "BENCH_PORT": str(broker.port),
                "BENCH_QOS": str(qos),
                "BENCH_PAYLOAD": str(payload),
            }
            locust = check(
                await asyncio.to_thread(
                    run_measured,
                    [
                        *(sys.executable, "-m", "locust", "-f", "benchmarks/locust_mqtt.py"),
                        *("--headless", "-u", "4", "-r", "4", "-t", f"{locust_seconds}s"),
                        *("--json", "--only-summary", "--stop-timeout", "5"),
                        *("--exit-code-on-error", "0"),  # a full paho queue is a failure
                    ],
                    env=env,
                    timeout=locust_seconds + 60,
                ),
                "locust's MQTT user",
            )
            stats = json.loads(locust.stdout)
            locust_count = sum(
                e["num_requests"] - e["num_failures"] for e in stats if "publish" in e["name"]
            )

        def settled(totals: dict[str, Any]) -> int:
            return int(totals["acknowledged"] + totals["unconfirmed"])

        ours_rates = [settled(totals) / run.cpu_s for run, totals in ours]
        paho_rates = {
            window: [out["delivered"] / run.cpu_s for run, out in runs]
            for window, runs in theirs.items()
        }
        best = max(paho_rates, key=lambda window: statistics.median(paho_rates[window]))
        ours_rate = statistics.median(ours_rates)
        paho_rate = statistics.median(paho_rates[best])
        # The round of barnstorm's median, for the figures that go with it.
        middle, totals = sorted(ours, key=lambda pair: settled(pair[1]) / pair[0].cpu_s)[
            len(ours) // 2
        ]
        paho_per_s = statistics.median(out["delivered"] / out["seconds"] for _, out in theirs[best])
        locust_rate = locust_count / locust.cpu_s
        return {
            "name": f"publish-qos{qos}",
            "what": f"{totals['sent']:,} messages of {farms} farms over {duration}, speed max, "
            f"QoS {qos}, to a private Mosquitto (set_tcp_nodelay true); each side the median "
            f"of {rounds} alternating rounds",
            "barnstorm_msg_per_cpu_s": round(ours_rate),
            "barnstorm_rounds_msg_per_cpu_s": [round(rate) for rate in ours_rates],
            "barnstorm_msg_per_cpu_s_after_start_up": round(
                (settled(totals) - settled(start_totals)) / max(middle.cpu_s - start.cpu_s, 1e-9)
            ),
            "barnstorm_start_up_cpu_s": round(start.cpu_s, 2),
            "barnstorm_msg_per_s": round(settled(totals) / middle.wall_s),
            "barnstorm_accounted": f"{settled(totals):,} of {totals['sent']:,} "
            + ("acknowledged" if qos else "handed over")
            + f", {totals['failed']} failed, {totals['dropped']} dropped",
            "baseline": "paho-mqtt, one client, one constant pre-built payload, tight loop, "
            "no on_publish callback"
            + (f", the best of in-flight windows 20/100/1000 (here {best})" if qos else ""),
            "baseline_msg_per_cpu_s": round(paho_rate),
            "baseline_windows_msg_per_cpu_s": {
                str(window): [round(rate) for rate in rates] for window, rates in paho_rates.items()
            },
            "baseline_msg_per_s": round(paho_per_s),
            "ratio": ratio(ours_rate, paho_rate),
            "goal": ">= 4" if qos else ">= 3",
            "locust_mqtt_user_msg_per_cpu_s": round(locust_rate),
            "locust_mqtt_user_msg_per_s": round(locust_count / locust_seconds),
            "ratio_to_locust": ratio(ours_rate, locust_rate),
        }

    with tempfile.TemporaryDirectory(prefix="barnstorm-publish-") as folder:
        return asyncio.run(measure(Path(folder)))
