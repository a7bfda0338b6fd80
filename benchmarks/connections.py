"""Connections: N devices each connected on its own and publishing every 10 s, split over
several processes and several 127.0.0.x source addresses, each process against a private
Mosquitto of its own (a process here may hold at most 20,000 open files, the broker
included); beside Locust's own MQTT user at the largest N it reaches."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from simulator.backend.broker import EmbeddedBroker

from .common import ROOT, SIMULATE, Measured, check, raise_open_files, ratio, run_measured

_DEVICES_PER_FARM = 10  # the benchmark's farm: one site of 10 rooms, a climate node each


def _fleet(folder: Path, every: str) -> tuple[Path, Path]:
    """A farms folder whose one template has exactly 10 climate nodes per farm, and a
    profiles folder whose climate node reports every ``every``."""
    farms = folder / "farms"
    profiles = folder / "profiles"
    farms.mkdir()
    profiles.mkdir()
    template = (ROOT / "farms" / "eu_finisher.toml").read_text()
    template = re.sub(r"(?m)^sites = .*$", "sites = [1, 1]", template)
    template = re.sub(r"(?m)^rooms_per_site = .*$", "rooms_per_site = [10, 10]", template)
    template = template.split("[devices]")[0] + "[devices]\nclimate_node = { per_room = 1 }\n"
    (farms / "bench.toml").write_text(template)
    for source in (ROOT / "device_profiles").glob("*.toml"):
        text = source.read_text()
        if source.stem == "climate_node":
            text = re.sub(r'(?m)^every = "[^"]*"', f'every = "{every}"', text)
        (profiles / source.name).write_text(text)
    return farms, profiles


def _barnstorm(
    folder: Path, urls: list[str], devices: int, processes: int, seconds: int
) -> tuple[list[Measured], list[dict[str, Any]]]:
    farms_dir, profiles_dir = _fleet(folder, "10s")
    farms = devices // _DEVICES_PER_FARM
    per_process = devices / processes
    # Each process spreads its connections over two source addresses of its own.
    commands = []
    for shard in range(processes):
        sources = [f"127.0.0.{2 + 2 * shard}", f"127.0.0.{3 + 2 * shard}"]
        commands.append(
            [
                *SIMULATE,
                *("--farms", str(farms), "--mqtt", urls[shard], "--qos", "1"),
                *("--farms-dir", str(farms_dir), "--profiles-dir", str(profiles_dir)),
                *("--shard", f"{shard}/{processes}", "--duration", f"{seconds}s"),
                *("--connect-rate", str(round(per_process / 5)), "--snapshot-every", "1s"),
                *("--timeseries", str(folder / f"series-{shard}.jsonl")),
                *("--report", str(folder / f"report-{shard}.json"), "--quiet", "--allow-loss"),
                *(arg for source in sources for arg in ("--source-address", source)),
            ]
        )

    async def all_of_them() -> list[Measured]:
        return list(
            await asyncio.gather(
                *(asyncio.to_thread(run_measured, c, timeout=seconds + 120) for c in commands)
            )
        )

    results = asyncio.run(all_of_them())
    for shard, result in enumerate(results):
        check(result, f"barnstorm shard {shard + 1}")
    reports = [json.loads((folder / f"report-{s}.json").read_text()) for s in range(processes)]
    for shard, report in enumerate(reports):
        series = (folder / f"series-{shard}.jsonl").read_text().splitlines()
        report["series"] = [json.loads(line) for line in series]
    return results, reports


def _locust(
    folder: Path, host: str, port: int, users: int, seconds: int, processes: int
) -> dict[str, Any]:
    payload = folder / "payload.json"
    payload.write_text('{"device_id":"cn-00001-1-01-1","seq":1,"temp_c":21.3,"rh_pct":66.2}')
    env = {
        **os.environ,
        "BENCH_HOST": host,
        "BENCH_PORT": str(port),
        "BENCH_QOS": "1",
        "BENCH_EVERY": "10",
        "BENCH_PAYLOAD": str(payload),
    }
    summary = folder / f"locust-{users}.json"
    # The same ramp as barnstorm's (everyone connected within 5 s) and the same number of
    # processes (Locust's own --processes: a master and its workers).
    result = run_measured(
        [
            *(sys.executable, "-m", "locust", "-f", "benchmarks/locust_mqtt.py", "--headless"),
            *("-u", str(users), "-r", str(max(users // 5, 1)), "-t", f"{seconds}s"),
            *("--processes", str(processes), "--json-file", str(summary.with_suffix(""))),
            *("--only-summary", "--stop-timeout", "5", "--exit-code-on-error", "0"),
        ],
        env=env,
        timeout=seconds + 120,
    )
    stats = json.loads(summary.read_text()) if result.returncode == 0 and summary.exists() else []
    connected = sum(e["num_requests"] - e["num_failures"] for e in stats if e["name"] == "connect")
    published = sum(
        e["num_requests"] - e["num_failures"] for e in stats if e["name"].startswith("publish")
    )
    lines = result.stderr.splitlines()
    return {
        "users": users,
        "exit_code": result.returncode,
        "error": next((line.strip() for line in reversed(lines) if "Error:" in line), None),
        "connected": connected,
        "messages": published,
        "cpu_s": result.cpu_s,
        "peak_mb": result.peak_tree_mb,
    }


def bench_connections(
    devices: int = 50_000,
    processes: int = 4,
    seconds: int = 60,
    locust_steps: tuple[int, ...] = (5_000, 10_000),
) -> dict[str, Any]:
    """Connect rate, CPU per message and memory per connection of barnstorm's fleet, and
    the same of Locust's MQTT user (a paho client and a thread per user)."""
    limit = raise_open_files(devices + max(locust_steps) + 10_000)
    # Each process (and its broker) holds a socket per connection: as many processes as
    # this machine's open-files limit needs, with room for the rest of the process.
    processes = max(processes, -(-devices // max(limit - 1_000, 1_000)))

    async def broker_up(folder: Path) -> dict[str, Any]:
        async with contextlib.AsyncExitStack() as stack:
            brokers = [
                await stack.enter_async_context(EmbeddedBroker("mosquitto"))
                for _ in range(processes)
            ]
            urls = [broker.url for broker in brokers]
            ours = await asyncio.to_thread(_barnstorm, folder, urls, devices, processes, seconds)
            first = brokers[0]
            # Locust at growing N, up to the first N where not every user connected.
            reached: dict[str, Any] | None = None
            failed: dict[str, Any] | None = None
            for users in locust_steps:
                attempt = await asyncio.to_thread(
                    _locust, folder, first.host, first.port, users, min(seconds, 60), processes
                )
                if attempt["exit_code"] != 0 or attempt["connected"] < users:
                    failed = attempt
                    break
                reached = attempt
        return {"ours": ours, "locust": reached or failed, "locust_failed": failed}

    with tempfile.TemporaryDirectory(prefix="barnstorm-connections-") as folder:
        measured = asyncio.run(broker_up(Path(folder)))
    results, reports = measured["ours"]
    up = sum(r["connections"]["up"] for r in reports)
    failed = sum(r["connections"]["failed"] for r in reports)
    sent = sum(r["totals"]["sent"] for r in reports)
    acked = sum(r["totals"]["acknowledged"] for r in reports)
    cpu = sum(r.cpu_s for r in results)
    # Peak against peak: each barnstorm process's highest resident memory (with anything it
    # started), summed; Locust's master and workers together at their highest.
    peak = sum(r.peak_tree_mb for r in results)
    # Connect rate: all of a shard's devices up, from the first snapshot that shows them.
    ramp = max(
        next(
            (
                row["wall_s"]
                for row in r["series"]
                if row["connected"] >= r["fleet"]["devices_in_run"]
            ),
            float("nan"),
        )
        for r in reports
    )
    locust = measured["locust"]
    ours_kb = peak * 1024 / max(up, 1)
    locust_kb = locust["peak_mb"] * 1024 / max(locust["connected"], 1)
    ours_cpu_ms = cpu * 1000 / max(sent, 1)
    locust_cpu_ms = locust["cpu_s"] * 1000 / max(locust["messages"], 1)
    return {
        "name": "connections",
        "what": f"{devices:,} devices over MQTT QoS 1, each publishing every 10 s for {seconds} s, "
        f"{processes} processes and brokers, {2 * processes} source addresses "
        f"(open-files limit {limit:,} per process)",
        "barnstorm_connected": up,
        "barnstorm_connect_failures": failed,
        "barnstorm_connect_rate_per_s": round(up / ramp) if ramp == ramp else None,
        "barnstorm_messages": f"{acked:,} of {sent:,} acknowledged",
        "barnstorm_cpu_ms_per_message": round(ours_cpu_ms, 3),
        "barnstorm_rss_kb_per_connection": round(ours_kb, 1),
        "goal": "50,000 devices at <= 20 KB each",
        "goal_met": up >= 50_000 and ours_kb <= 20,
        "baseline": f"Locust's MQTT user at the largest N it reached of {locust_steps}, on "
        f"{processes} processes (--processes), the same 5 s ramp, peak memory of all of them",
        "baseline_failed_at": (
            f"{measured['locust_failed']['users']:,} users: "
            f"{measured['locust_failed']['connected']:,} connected, exit code "
            f"{measured['locust_failed']['exit_code']} ({measured['locust_failed']['error']})"
            if measured["locust_failed"]
            else None
        ),
        "baseline_connected": locust["connected"],
        "baseline_cpu_ms_per_message": round(locust_cpu_ms, 3),
        "baseline_rss_kb_per_connection": round(locust_kb, 1),
        "ratio_memory": ratio(ours_kb, locust_kb),
        "ratio_cpu": ratio(ours_cpu_ms, locust_cpu_ms),
    }
