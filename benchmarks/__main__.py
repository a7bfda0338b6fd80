"""Benchmarks, each printed as barnstorm's figure, a baseline measured in the same run, and the
ratio between them (these machines are noisy: absolute times mean little, ratios travel).

    python -m benchmarks            # all
    python -m benchmarks fleet      # build the 500-farm fleet
    python -m benchmarks engine     # generate and encode messages as fast as possible
    python -m benchmarks history    # a year of 12 farms as history (about 5 minutes)
    python -m benchmarks bridge     # the same fleet standalone and through the Locust bridge
    python -m benchmarks soak       # the simulator's memory over a 10-minute compressed soak
    python -m benchmarks all --json results.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from faker import Faker

from simulator.clock import VirtualClock
from simulator.engine import Engine
from simulator.farms import load_templates
from simulator.fleet import build_fleet
from simulator.metrics import Metrics
from simulator.profiles import load_profiles
from simulator.transports.memory import MemoryTransport
from simulator.units import parse_instant


def _best_of(repeats: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def bench_fleet(farms: int = 500) -> dict[str, Any]:
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
    ours = _best_of(5, lambda: build_fleet(templates, profiles, farms))
    baseline = _best_of(5, names_only)
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
    baseline of json.dumps alone on payload-shaped dicts: the floor of per-message Python work."""
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
    encode = json.JSONEncoder(separators=(",", ":")).encode

    def baseline_work() -> None:
        for i in range(sent):
            sample["seq"] = i
            encode(sample).encode()

    baseline = _best_of(3, baseline_work)
    return {
        "name": "engine",
        "what": f"{sent:,} messages of {farms} farms over {hours:g} simulated hours, speed max",
        "barnstorm_msg_per_s": round(sent / ours),
        "baseline": "json.dumps of a payload-shaped dict per message, nothing else",
        "baseline_msg_per_s": round(sent / baseline),
        "ratio": round(baseline / ours, 3),
    }


def bench_history(farms: int = 12, days: int = 365, processes: int = 2) -> dict[str, Any]:
    """A year of 12 farms written as history (``--speed max --output``), the real command,
    vs. the baseline of json.dumps alone for as many payload-shaped dicts on one core."""
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
    sample = {"device_id": "cn-00001-1-01-1", "seq": 1, "temp_c": 21.3, "rh_pct": 66.2}
    encode = json.JSONEncoder(separators=(",", ":")).encode
    count = 200_000
    started = time.perf_counter()
    for i in range(count):
        sample["seq"] = i
        encode(sample)
    baseline_rate = count / (time.perf_counter() - started)
    return {
        "name": "history",
        "what": f"{days} days of {farms} farms, --speed max --output, {processes} processes",
        "barnstorm_seconds": round(ours, 1),
        "messages": sent,
        "bytes": size,
        "barnstorm_msg_per_s": round(sent / ours),
        "baseline": "json.dumps of a small dict per message on one core, nothing else",
        "baseline_msg_per_s": round(baseline_rate),
        "ratio": round(sent / ours / baseline_rate, 3),
    }


def bench_bridge(farms: int = 60, duration: str = "12h", target: str = "mqtt") -> dict[str, Any]:
    """Device throughput through the Locust bridge (locustfiles/mixed.py: the engine as a
    child process, every result a Locust request event) vs. the same fleet standalone, both
    at speed max, over MQTT to a private broker (``target="mqtt"``) or written to a file
    (``"file"``: no broker in the way, the bridge's own ceiling). The bridged figure counts
    what reached Locust's statistics; both runs' own reports give the wall time."""
    import os
    import subprocess
    import sys
    import tempfile

    from simulator.broker import EmbeddedBroker

    root = Path(__file__).resolve().parent.parent

    async def measure(folder: Path) -> tuple[dict[str, Any], dict[str, Any], int]:
        async with EmbeddedBroker("auto") as broker:
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
                env["BARNSTORM_MQTT"] = broker.url
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
            devices_only = [
                "-u",
                "0",
                "-t",
                "10m",
                "--json",
                "--only-summary",
                "--host",
                "http://x",
            ]
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
            return (
                json.loads(standalone.read_text()),
                json.loads(bridged.read_text()),
                counted,
            )

    with tempfile.TemporaryDirectory() as folder:
        alone, bridged, counted = asyncio.run(measure(Path(folder)))
    alone_rate = alone["totals"]["sent"] / alone["time"]["wall_seconds"]
    bridged_rate = counted / bridged["time"]["wall_seconds"]
    settled = bridged["totals"]["sent"] - bridged["totals"]["in_flight"]
    return {
        "name": f"bridge-{target}",
        "what": f"{alone['totals']['sent']:,} messages of {farms} farms over {duration}, "
        + ("speed max, MQTT QoS 1 to a private broker" if target == "mqtt" else "to a file"),
        "barnstorm_msg_per_s": round(bridged_rate),
        "baseline": "the same fleet standalone (simulate run)",
        "baseline_msg_per_s": round(alone_rate),
        "ratio": round(bridged_rate / alone_rate, 3),
        "goal": ">= 0.8",
        "results_in_locust": counted,
        "results_settled_by_fleet": settled,
    }


def bench_soak(minutes: float = 10.0, farms: int = 100, speed: float = 60.0) -> dict[str, Any]:
    """The simulator's own memory over a compressed soak (``minutes`` of wall time at
    ``speed``, MQTT QoS 1 to a private broker): resident memory at the end against the
    baseline of the same process after its warm-up (the first fifth of the run)."""
    import os
    import subprocess
    import sys
    import tempfile

    from simulator.broker import EmbeddedBroker

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


BENCHMARKS = {
    "fleet": bench_fleet,
    "engine": bench_engine,
    "bridge": bench_bridge,
    "bridge-file": lambda: bench_bridge(target="file", duration="2d"),
    "history": bench_history,
    "soak": bench_soak,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "which", nargs="*", help=f"all (default) or any of: {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    # "all" is the quick ones; the year-long history and the soak are asked for by name.
    quick = [name for name in BENCHMARKS if name not in ("history", "soak")]
    names = quick if not args.which or "all" in args.which else args.which
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r} (known: all, {', '.join(BENCHMARKS)})")
    results = []
    for name in names:
        result = BENCHMARKS[name]()
        results.append(result)
        print(f"{result['name']}: {result['what']}")
        for key, value in result.items():
            if key not in ("name", "what"):
                print(f"  {key}: {value}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
