"""Publish throughput of this checkout against another revision, A/B, on one private
Mosquitto: messages settled per CPU-second of the whole ``simulate`` process (start-up
included), rounds alternating so that a noisy machine hurts both sides alike.

    python -m benchmarks.publish_ab REV [--qos 1] [--rounds 5]

REV is checked out into a temporary git worktree (removed afterwards). Prints each round,
the medians and the ratio this checkout / REV.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import compile_package
from simulator.backend.broker import EmbeddedBroker

ROOT = Path(__file__).resolve().parent.parent


def settled_per_cpu_second(tree: Path, url: str, qos: int, report: Path) -> tuple[float, float]:
    """One run of 100 farms for 12 simulated hours at --speed max from ``tree``: messages
    settled per CPU-second, and per second of wall time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [
            *(sys.executable, "-m", "simulator", "--farms", "100", "--mqtt", url),
            *("--qos", str(qos), "--speed", "max", "--duration", "12h"),
            *("--start", "2026-01-01", "--connect-rate", "0", "--quiet", "--allow-loss"),
            *("--topic-template", "bench/{device_id}/{kind}", "--report", str(report)),
        ],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    totals = json.loads(report.read_text())["totals"]
    settled = float(totals["acknowledged"] + totals["unconfirmed"])
    return settled / cpu, settled / wall


async def compare(trees: dict[str, Path], qos: int, rounds: int, folder: Path) -> None:
    rates: dict[str, list[float]] = {name: [] for name in trees}
    walls: dict[str, list[float]] = {name: [] for name in trees}
    async with EmbeddedBroker("mosquitto") as broker:
        for round_ in range(rounds):
            for name, tree in trees.items():
                report = folder / "report.json"
                rate, per_s = await asyncio.to_thread(
                    settled_per_cpu_second, tree, broker.url, qos, report
                )
                rates[name].append(rate)
                walls[name].append(per_s)
                print(
                    f"round {round_ + 1} {name}: {rate:,.0f} msg per CPU-second, {per_s:,.0f} msg/s"
                )
    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, median in medians.items():
        wall = statistics.median(walls[name])
        print(f"median {name}: {median:,.0f} msg per CPU-second, {wall:,.0f} msg/s (QoS {qos})")
    this, other = medians.values()
    print(f"ratio this / {list(trees)[1]}: {this / other:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("revision")
    parser.add_argument("--qos", type=int, default=1, choices=(0, 1, 2))
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        other = Path(folder) / "other"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(other), options.revision],
            cwd=ROOT,
            check=True,
        )
        try:
            trees = {"this": ROOT, options.revision: other}
            for tree in trees.values():
                compile_package(tree)
            asyncio.run(compare(trees, options.qos, options.rounds, Path(folder)))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT)


if __name__ == "__main__":
    main()
