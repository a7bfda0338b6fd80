"""The Locust bridge and the soak: barnstorm inside Locust, and its memory over time."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any


def bench_bridge(
    farms: int = 60, duration: str = "12h", target: str = "mqtt", rounds: int = 3
) -> dict[str, Any]:
    """Device throughput through the Locust bridge (locustfiles/mixed.py: the engine as a
    child process, every result a Locust request event) vs. the same fleet standalone, both
    at speed max, over MQTT to a private broker (``target="mqtt"``) or written to a file
    (``"file"``: no broker in the way, the bridge's own ceiling). The bridged figure counts
    what reached Locust's statistics; both runs' own reports give the wall time. ``rounds``
    alternate the two, and each side's figure is the median of its rounds (one pair of a
    few seconds each swings by a quarter on a shared machine)."""
    import os
    import statistics
    import subprocess
    import sys
    import tempfile

    from simulator.backend.broker import EmbeddedBroker

    root = Path(__file__).resolve().parent.parent

    async def one_round(folder: Path, url: str) -> tuple[dict[str, Any], dict[str, Any], int]:
        env = {
            **os.environ,
            "BARNSTORM_FARMS": str(farms),
            "BARNSTORM_SPEED": "max",
            "BARNSTORM_DURATION": duration,
            "BARNSTORM_CONNECT_RATE": "0",
            "BARNSTORM_START": "2026-01-01",
            "BARNSTORM_LIVE": "0",
        }
        if target == "mqtt":
            env["BARNSTORM_MQTT"] = url
        else:
            env["BARNSTORM_OUTPUT"] = str(folder / "messages.jsonl")
            env["BARNSTORM_PROCESSES"] = "1"  # the bridge runs one engine process
        standalone = folder / "standalone.json"
        await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "simulator", "run", "--quiet", "--report", str(standalone)],
            env=env,
            cwd=root,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        bridged = folder / "bridged.json"
        devices_only = ["-u", "0", "-t", "10m", "--json", "--only-summary", "--host", "http://x"]
        command = [sys.executable, "-m", "locust", "-f", "locustfiles/mixed.py", "--headless"]
        locust = await asyncio.to_thread(
            subprocess.run,
            [*command, *devices_only],
            env={**env, "BARNSTORM_REPORT": str(bridged)},
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
        stats = json.loads(locust.stdout)
        counted = sum(e["num_requests"] for e in stats if e["method"] in ("MQTT", "FILE"))
        return json.loads(standalone.read_text()), json.loads(bridged.read_text()), counted

    async def measure(folder: Path) -> list[tuple[dict[str, Any], dict[str, Any], int]]:
        async with EmbeddedBroker("auto") as broker:
            return [await one_round(folder, broker.url) for _ in range(rounds)]

    with tempfile.TemporaryDirectory() as folder:
        runs = asyncio.run(measure(Path(folder)))
    alone_rates = [a["totals"]["sent"] / a["time"]["wall_seconds"] for a, _, _ in runs]
    bridged_rates = [n / b["time"]["wall_seconds"] for _, b, n in runs]
    alone_rate, bridged_rate = statistics.median(alone_rates), statistics.median(bridged_rates)
    alone, bridged, counted = runs[-1]
    settled = bridged["totals"]["sent"] - bridged["totals"]["in_flight"]
    return {
        "name": f"bridge-{target}",
        "what": f"{alone['totals']['sent']:,} messages of {farms} farms over {duration}, "
        + ("speed max, MQTT QoS 1 to a private broker" if target == "mqtt" else "to a file")
        + f"; each side the median of {rounds} alternating rounds",
        "barnstorm_msg_per_s": round(bridged_rate),
        "baseline": "the same fleet standalone (simulate run)",
        "baseline_msg_per_s": round(alone_rate),
        "ratio": round(bridged_rate / alone_rate, 3),
        "goal": ">= 0.8",
        "results_in_locust": counted,
        "results_settled_by_fleet": settled,
        "barnstorm_rounds_msg_per_s": [round(r) for r in bridged_rates],
        "baseline_rounds_msg_per_s": [round(r) for r in alone_rates],
    }


def bench_soak(minutes: float = 10.0, farms: int = 100, speed: float = 60.0) -> dict[str, Any]:
    """The simulator's own memory over a compressed soak (``minutes`` of wall time at
    ``speed``, MQTT QoS 1 to a private broker): resident memory at the end against the
    baseline of the same process after its warm-up (the first fifth of the run)."""
    import os
    import subprocess
    import sys
    import tempfile

    from simulator.backend.broker import EmbeddedBroker

    duration = f"{round(minutes * 60 * speed)}s"

    async def measure(folder: Path) -> list[dict[str, Any]]:
        async with EmbeddedBroker("auto") as broker:
            fleet = ["--farms", str(farms), "--mqtt", broker.url, "--connect-rate", "0"]
            timing = ["--speed", f"{speed:g}", "--duration", duration, "--snapshot-every"]
            timing += [f"{speed:g}s", "--quiet"]
            await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "simulator", "soak", *fleet, *timing],
                env=os.environ.copy(),
                cwd=folder,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        lines = (folder / "soak-timeseries.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    with tempfile.TemporaryDirectory() as folder:
        rows = asyncio.run(measure(Path(folder)))
    warm = rows[len(rows) // 5]
    end = rows[-1]
    return {
        "name": "soak-memory",
        "what": f"{farms} farms over MQTT QoS 1, {minutes:g} min at {speed:g}x "
        f"({duration} simulated), {end['sent']:,} messages",
        "barnstorm_rss_mb_at_end": end["rss_mb"],
        "baseline": f"the same process after warm-up ({warm['wall_s']:.0f} s)",
        "baseline_rss_mb": warm["rss_mb"],
        "ratio": round(end["rss_mb"] / warm["rss_mb"], 3),
        "goal": "< 1.10",
        "peak_rss_mb": max(r["rss_mb"] for r in rows),
    }
