"""One run over several processes: the fleet split by farm, each shard a run of its own,
the shard reports merged into one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import multiprocessing
import shutil
import time
from dataclasses import replace
from typing import Any

from rich.console import Console

from simulator.fleet.load import load_fleet
from simulator.metrics.sla import (
    evaluate,
    report_measures,
)
from simulator.runner.config import RunConfig, RunResult
from simulator.runner.delivery import FailedShare
from simulator.runner.run import Run, judge, write_outputs


def _run_shard(config: RunConfig) -> dict[str, Any]:
    """One process of a sharded history run (module level: it crosses a process boundary)."""
    return asyncio.run(Run(config, Console(stderr=True, quiet=True)).execute()).report


def run_sharded(config: RunConfig) -> RunResult:
    """History over several processes: each writes the farms of its shard to a part file,
    then the parts are joined in shard order (each part is in time order)."""
    assert config.target.output is not None
    # Bad input is reported here, once, not as a crash in every worker.
    fleet, _ = load_fleet(
        config.fleet.farms,
        config.fleet.seed,
        config.fleet.farms_dir,
        config.fleet.profiles_dir,
        config.fleet.device_types,
    )
    if config.timing.scenario is not None:
        config.timing.scenario.bind(fleet, config.timing.start, config.fleet.seed)
    count = config.processes
    parts = [
        config.target.output.with_name(f".{config.target.output.name}.part{i}")
        for i in range(count)
    ]
    shards = [
        replace(
            config,
            fleet=replace(config.fleet, shard=(i, count)),
            target=replace(config.target, output=part),
            outputs=replace(config.outputs, report=None, live=False),
            processes=1,
        )
        for i, part in enumerate(parts)
    ]
    started = time.monotonic()
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(count, mp_context=context) as pool:
        reports = list(pool.map(_run_shard, shards))
    try:
        with config.target.output.open("wb") as joined:
            for part in parts:
                with part.open("rb") as piece:
                    shutil.copyfileobj(piece, joined, 1 << 22)
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
    report = merge_reports(reports, time.monotonic() - started)
    report["config"] = config.public()
    report["target"]["url"] = str(config.target.output)
    if config.verdicts.slas:
        judge(
            report, evaluate(config.verdicts.slas, report_measures(report)), config.verdicts.junit
        )
    write_outputs(report, config)
    return RunResult(report, report["exit_code"])


def merge_reports(reports: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    """One report from the reports of a run's shards: counts add up, the worst outcome wins."""
    merged: dict[str, Any] = json.loads(json.dumps(reports[0]))

    def add(into: dict[str, Any], other: dict[str, Any]) -> None:
        for key, value in other.items():
            if isinstance(value, bool) or key in ("latency_ms", "rate_per_s"):
                continue
            if isinstance(value, int) and isinstance(into.get(key), int):
                into[key] += value
            elif isinstance(value, int) and key not in into:
                into[key] = value  # an error kind only this shard met
            elif isinstance(value, dict) and isinstance(into.get(key), dict):
                add(into[key], value)
            elif isinstance(value, dict) and key not in into:
                into[key] = dict(value)

    for other in reports[1:]:
        add(merged["totals"], other["totals"])
        add(merged["by_device_type"], other["by_device_type"])
        add(merged["connections"], other["connections"])
        merged["fleet"]["devices_in_run"] += other["fleet"]["devices_in_run"]
        merged["time"]["simulated_end"] = max(
            merged["time"]["simulated_end"], other["time"]["simulated_end"]
        )
        for key in ("error", "outcome"):
            if other[key] not in (None, "completed") and merged[key] in (None, "completed"):
                merged[key] = other[key]
        merged["exit_code"] = max(merged["exit_code"], other["exit_code"])
    if merged.get("max_failed"):
        limit = merged["max_failed"]["limit"]
        merged["max_failed"] = FailedShare.of(merged["totals"], limit).as_dict()
    merged["time"]["wall_seconds"] = round(wall, 3)
    merged["time"]["processes"] = len(reports)
    for counts in (merged["totals"], *merged["by_device_type"].values()):
        delivered = counts["acknowledged"] + counts["unconfirmed"]
        counts["rate_per_s"] = round(delivered / wall, 3) if wall > 0 else 0.0
    return merged
