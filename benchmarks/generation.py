"""Generation: building the fleet, generating and encoding messages, writing history."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from faker import Faker

from simulator.engine.clock import VirtualClock
from simulator.engine.engine import Engine
from simulator.fleet.build import build_fleet
from simulator.fleet.farms import load_templates
from simulator.fleet.profiles import load_profiles
from simulator.metrics.metrics import Metrics
from simulator.transports.memory import MemoryTransport
from simulator.units import parse_instant


def _best_of(repeats: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def bench_fleet(farms: int = 500, repeats: int = 5) -> dict[str, Any]:
    """Fleet build vs. the baseline of Faker alone making the same farms' names and places."""
    profiles = load_profiles()
    templates = load_templates()
    build_fleet(templates, profiles, 5)  # warm imports and Faker locales
    fakers = {t.locale: Faker(t.locale) for t in templates}

    def names_only() -> None:
        rng = np.random.default_rng(1)
        for i in range(farms):
            template = templates[i % len(templates)]
            fake = fakers[template.locale]
            fake.seed_instance(int(rng.integers(2**62)))
            fake.local_latlng(country_code=template.country)
            fake.last_name()

    fleet = build_fleet(templates, profiles, farms)
    ours = _best_of(repeats, lambda: build_fleet(templates, profiles, farms))
    baseline = _best_of(repeats, names_only)
    return {
        "name": "fleet",
        "what": f"build {farms} farms ({fleet.devices.count:,} devices, "
        f"{fleet.rooms.count:,} rooms)",
        "barnstorm_s": round(ours, 4),
        "baseline": "Faker names and places for the same farms, nothing else",
        "baseline_s": round(baseline, 4),
        "ratio": round(ours / baseline, 2),
    }


def bench_engine(farms: int = 50, hours: float = 24.0) -> dict[str, Any]:
    """Messages generated and encoded per second (speed max, memory transport) vs. the
    baseline of orjson.dumps alone on payload-shaped dicts: the floor of per-message Python work."""
    fleet_profiles = load_profiles()
    fleet = build_fleet(load_templates(), fleet_profiles, farms)
    start = parse_instant("2026-01-01")

    async def run() -> int:
        metrics = Metrics(fleet.devices.type_names)
        transport = MemoryTransport(metrics, keep=False)
        engine = Engine(
            fleet,
            fleet_profiles,
            transport,
            VirtualClock(start),
            start=start,
            duration=hours * 3600,
            seed=1,
            topic_template="t/{device_id}/{kind}",
        )
        async with transport:
            await engine.run(asyncio.Event())
        return metrics.totals().sent

    started = time.perf_counter()
    sent = asyncio.run(run())
    ours = time.perf_counter() - started
    sample = {
        "device_id": "cm-00001-1-01-1",
        "device_type": "cough_monitor",
        "farm_id": "farm-00001",
        "room_id": "farm-00001-s1-r01",
        "fw": "4.2.1",
        "seq": 1,
        "ts": "2026-01-01T00:00:00.000Z",
        "kind": "summary",
        "cough_count": 12,
        "temp_c_1": 21.3,
        "temp_c_2": 21.1,
        "rh_pct": 66.2,
        "sound_leq_dba": 70.4,
        "rssi_dbm": -71,
    }
    encode = orjson.dumps  # what barnstorm encodes with

    def baseline_work() -> None:
        for i in range(sent):
            sample["seq"] = i
            encode(sample)

    baseline = _best_of(3, baseline_work)
    return {
        "name": "engine",
        "what": f"{sent:,} messages of {farms} farms over {hours:g} simulated hours, speed max",
        "barnstorm_msg_per_s": round(sent / ours),
        "baseline": "orjson.dumps of a payload-shaped dict per message, nothing else",
        "baseline_msg_per_s": round(sent / baseline),
        "ratio": round(baseline / ours, 3),
    }


def bench_history(farms: int = 12, days: int = 365, processes: int = 2) -> dict[str, Any]:
    """A year of 12 farms written as history (``--speed max --output``), the real command,
    vs. the baseline of orjson.dumps alone for as many payload-shaped dicts on one core."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="barnstorm-history-") as folder:
        out = Path(folder) / "year.jsonl"
        report = Path(folder) / "report.json"
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "simulator",
                "--farms",
                str(farms),
                "--start",
                "2021-01-01",
                "--duration",
                f"{days}d",
                "--speed",
                "max",
                "--output",
                str(out),
                "--quiet",
                "--processes",
                str(processes),
                "--report",
                str(report),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        ours = time.perf_counter() - started
        sent = json.loads(report.read_text())["totals"]["sent"]
        size = out.stat().st_size
    baseline_rate = _encode_rate()
    return {
        "name": "history",
        "what": f"{days} days of {farms} farms, --speed max --output, {processes} processes",
        "barnstorm_seconds": round(ours, 1),
        "messages": sent,
        "bytes": size,
        "barnstorm_msg_per_s": round(sent / ours),
        "baseline": "orjson.dumps of a small dict per message on one core, nothing else",
        "baseline_msg_per_s": round(baseline_rate),
        "ratio": round(sent / ours / baseline_rate, 3),
    }


_FLEET_PROBE = """
import time
started = time.perf_counter()  # cold: the imports, profiles, templates and Faker count
import os, sys
from pathlib import Path
from simulator.fleet.build import build_fleet
from simulator.fleet.farms import load_templates
from simulator.fleet.profiles import load_profiles

def rss():
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")

before = rss()
profiles, templates = load_profiles(), load_templates()
fleet = build_fleet(templates, profiles, int(sys.argv[1]))
seconds = time.perf_counter() - started
print(seconds, rss() - before, fleet.devices.count)
"""


def bench_fleet_sizes(sizes: tuple[int, ...] = (500, 5000)) -> list[dict[str, Any]]:
    """Build time (best of 3 fresh processes) and memory of the fleet at each size, vs.
    the goal (0.5 s for 500 farms, 3 s for 5,000) and Faker alone for the same farms."""
    import subprocess
    import sys

    goals = {500: 0.5, 5000: 3.0}
    results = []
    for farms in sizes:
        runs = []
        for _ in range(3):
            out = subprocess.run(
                [sys.executable, "-c", _FLEET_PROBE, str(farms)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            runs.append((float(out[0]), int(out[1]), int(out[2])))
        seconds, memory, devices = min(runs)
        baseline = bench_fleet(farms, repeats=1)["baseline_s"]
        results.append(
            {
                "name": f"fleet-{farms}",
                "what": f"build {farms:,} farms ({devices:,} devices) in a fresh process, cold "
                "(imports, profiles, templates and Faker included)",
                "barnstorm_s": round(seconds, 3),
                "barnstorm_memory_mb": round(memory / 2**20, 1),
                "bytes_per_device": round(memory / devices),
                "goal": f"< {goals.get(farms, 0.5):g} s",
                "goal_met": seconds < goals.get(farms, 0.5),
                "baseline": "Faker names and places for the same farms, nothing else",
                "baseline_s": baseline,
                "ratio": round(seconds / baseline, 2),
            }
        )
    return results


def bench_history_core(farms: int = 12, days: int = 30) -> dict[str, Any]:
    """History to a file on one core (``--processes 1``): messages per CPU-second of the
    whole process, vs. the goal of 200,000 and the baseline of orjson.dumps alone."""
    import sys
    import tempfile

    from .common import check, run_measured

    with tempfile.TemporaryDirectory(prefix="barnstorm-history-") as folder:
        report = Path(folder) / "report.json"
        result = check(
            run_measured(
                [
                    *(sys.executable, "-m", "simulator", "--farms", str(farms)),
                    *("--start", "2021-01-01", "--duration", f"{days}d", "--speed", "max"),
                    *("--output", str(Path(folder) / "history.jsonl"), "--processes", "1"),
                    *("--quiet", "--report", str(report)),
                ]
            ),
            "history",
        )
        sent = json.loads(report.read_text())["totals"]["sent"]
    baseline = _encode_rate()
    ours = sent / result.cpu_s
    return {
        "name": "history-core",
        "what": f"{days} days of {farms} farms to a file, --speed max, one process "
        f"({sent:,} messages, start-up included)",
        "barnstorm_msg_per_cpu_s": round(ours),
        "goal": ">= 200,000 per core",
        "goal_met": ours >= 200_000,
        "baseline": "orjson.dumps of a small dict per message on one core, nothing else",
        "baseline_msg_per_s": round(baseline),
        "ratio": round(ours / baseline, 3),
    }


def _encode_rate(count: int = 200_000) -> float:
    sample = {"device_id": "cn-00001-1-01-1", "seq": 1, "temp_c": 21.3, "rh_pct": 66.2}
    encode = orjson.dumps  # what barnstorm encodes with
    started = time.perf_counter()
    for i in range(count):
        sample["seq"] = i
        encode(sample)
    return count / (time.perf_counter() - started)
