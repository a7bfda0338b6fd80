"""One run over several processes: the fleet split by farm, each shard a run of its own,
the shard reports merged into one.

History (``--output`` at ``--speed max``) writes a part file per shard, joined in order.
Every other run (real time or accelerated, MQTT or HTTP, a soak, the embedded default)
starts its target once in the parent, runs the shards against it, merges their books
(latency percentiles from the merged histograms, not averaged), and reconciles once
against the target's read-back for every shard's devices.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import multiprocessing
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from rich.console import Console

from simulator.errors import BarnstormError
from simulator.exitcodes import EXIT_FAILED, EXIT_LOSS, EXIT_OK
from simulator.fleet.build import Fleet
from simulator.fleet.load import load_fleet
from simulator.metrics.loop_lag import lag_warning
from simulator.metrics.metrics import Histogram
from simulator.metrics.server_timing import ServerTimings, growth_across_steps
from simulator.metrics.sla import (
    evaluate,
    report_measures,
)
from simulator.metrics.timeseries import RUNNING_COUNTS, trends
from simulator.redact import write_private
from simulator.runner import progress
from simulator.runner.config import RunConfig, RunResult
from simulator.runner.delivery import FailedShare
from simulator.runner.outputs import judge, put_backend, write_outputs
from simulator.runner.run import Run
from simulator.runner.verify import observer_for, verification
from simulator.transports import parquet
from simulator.transports.file import history_format
from simulator.transports.mqtt.observer import Observer
from simulator.transports.readback import ReadBackError, ReadBackTarget, read_back, take_mark


def _snapshot(run: Run) -> list[float] | None:
    """A worker's running counts for the parent's progress board (see runner/progress)."""
    metrics, engine = run.metrics, run.engine
    if metrics is None or engine is None:
        return None
    totals = metrics.totals()
    return [
        totals.sent,
        totals.acknowledged + totals.unconfirmed,
        totals.failed + totals.dropped,
        metrics.connections.connected,
        min(engine.clock.now(), engine.end),
        totals.latency.percentile(0.95) * 1000,
    ]


async def _execute(run: Run, config: RunConfig) -> RunResult:
    """Run a shard, writing its progress to the parent's board meanwhile."""
    board = asyncio.create_task(progress.publish(config.fleet.shard[0], lambda: _snapshot(run)))
    try:
        return await run.execute()
    finally:
        board.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await board


def _run_shard(config: RunConfig) -> dict[str, Any]:
    """One process of a sharded history run (module level: it crosses a process boundary)."""

    async def main() -> dict[str, Any]:
        return (await _execute(Run(config, Console(stderr=True, quiet=True)), config)).report

    return asyncio.run(main())


async def _in_pool(
    count: int,
    work: Any,
    shards: list[RunConfig],
    view: Callable[[Any], progress.BoardView],
) -> list[Any]:
    """``work`` over ``shards`` in ``count`` spawned processes that write to one progress
    board, shown by ``view(board)`` while they run; their results or exceptions."""
    context = multiprocessing.get_context("spawn")
    board = progress.new_board(context, count)
    loop = asyncio.get_running_loop()
    with concurrent.futures.ProcessPoolExecutor(
        count, mp_context=context, initializer=progress.attach, initargs=(board,)
    ) as pool:
        async with view(board).running():
            return await asyncio.gather(
                *(loop.run_in_executor(pool, work, shard) for shard in shards),
                return_exceptions=True,
            )


def run_sharded(config: RunConfig) -> RunResult:
    """History over several processes: each writes the farms of its shard to a part file,
    then the parts are joined in shard order (each part is in time order)."""
    assert config.target.output is not None
    _checked_fleet(config)
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

    def view(board: Any) -> progress.BoardView:
        return progress.BoardView(
            board,
            count,
            (config.timing.start, config.timing.start + config.timing.duration),
            Console(stderr=True),
            enabled=config.outputs.live,
            files=parts,
        )

    finished = asyncio.run(_in_pool(count, _run_shard, shards, view))
    failed = [outcome for outcome in finished if isinstance(outcome, BaseException)]
    if failed:
        for part in parts:
            part.unlink(missing_ok=True)
        raise failed[0]
    reports: list[dict[str, Any]] = list(finished)
    try:
        if history_format(config.target.output) == "parquet":
            parquet.join(parts, config.target.output)
        else:  # JSON lines, or gzip members, one after the other
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


def _run_live_shard(config: RunConfig) -> dict[str, Any]:
    """One process of a parallel run: its report, and what the parent needs to merge
    latency and to reconcile (module level: it crosses a process boundary)."""

    async def main() -> dict[str, Any]:
        run = Run(config, Console(stderr=True, quiet=True))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, run.request_stop)
        result = await _execute(run, config)
        metrics, engine = run.metrics, run.engine
        histograms: dict[str, Any] = {}
        if metrics is not None:
            for name, counts in zip(metrics.type_names, metrics.by_type, strict=True):
                h = counts.latency
                histograms[name] = (h.counts, h.total, h.total_seconds, h.max, h.min)
        return {
            "report": result.report,
            "histograms": histograms,
            "lag": run.loop_lag.histogram.counts,
            "lag_state": (
                run.loop_lag.histogram.total,
                run.loop_lag.histogram.total_seconds,
                run.loop_lag.histogram.max,
            ),
            "server_timing": metrics.server_timings.take() if metrics is not None else {},
            "devices": engine.devices.tolist() if engine is not None else [],
            "next_seq": engine.next_seq[engine.devices].tolist() if engine is not None else [],
            "undelivered": sorted(metrics.undelivered or ()) if metrics is not None else [],
        }

    return asyncio.run(main())


def _histogram(state: tuple[list[int], int, float, float, float]) -> Histogram:
    h = Histogram()
    h.counts, h.total, h.total_seconds, h.max, h.min = list(state[0]), *state[1:]
    return h


async def _parallel(config: RunConfig, fleet: Fleet) -> RunResult:
    """Start the target once (the embedded default's broker and backend), run the shards
    against it in worker processes, merge their books, reconcile once."""
    count = config.processes
    parent = Run(config, Console(stderr=True))
    started = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        mqtt, http, readback = await parent._open_target(stack)
        mark = await take_mark(readback) if readback is not None else None
        observer = None
        if mqtt is not None and config.target.verify:
            observer = await stack.enter_async_context(
                observer_for(mqtt, config.fleet.topic_template, config.target.verify, config.run_id)
            )
        per_gateway = parent._per_gateway()
        shards = [
            replace(
                config,
                fleet=replace(config.fleet, shard=(i, count)),
                target=replace(
                    config.target,
                    mqtt=mqtt,
                    http=http,
                    readback=None,
                    verify=0,
                    per_gateway=per_gateway,
                ),
                outputs=replace(
                    config.outputs,
                    report=None,
                    html=None,
                    csv=None,
                    timeseries=None,
                    prometheus=None,
                    live=False,
                ),
                verdicts=replace(config.verdicts, slas=(), junit=None),
                processes=1,
                reconciled_by_parent=readback is not None or observer is not None,
            )
            for i in range(count)
        ]
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # the shards stop themselves
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, lambda: None)

        def view(board: Any) -> progress.BoardView:
            return progress.BoardView(
                board,
                count,
                (config.timing.start, config.timing.start + config.timing.duration),
                parent.console,
                enabled=config.outputs.live,
            )

        finished = await _in_pool(count, _run_live_shard, shards, view)
        outcomes = [o for o in finished if not isinstance(o, BaseException)]
        crashed = [o for o in finished if isinstance(o, BaseException)]
        if not outcomes:
            raise crashed[0]
        report = merge_reports([o["report"] for o in outcomes], time.monotonic() - started)
        if crashed:  # what the others measured is still reported, and the run fails
            report["outcome"] = "failed"
            report["error"] = (
                f"{len(crashed)} of {count} worker processes failed: "
                f"{type(crashed[0]).__name__}: {crashed[0]}"
            )
            report["exit_code"] = EXIT_FAILED
        _merge_latency(report, outcomes)
        _merge_server_timing(report, outcomes)
        report["timeseries"] = merge_rows([o["report"].get("timeseries") or [] for o in outcomes])
        report["trends"] = trends(report["timeseries"])
        if config.outputs.timeseries is not None:  # the shards' rows, merged, at the end
            rows = b"".join(orjson.dumps(row) + b"\n" for row in report["timeseries"])
            write_private(config.outputs.timeseries, rows.decode(), "--timeseries")
        if readback is not None and report["outcome"] != "failed":
            await _reconcile(report, fleet, readback, mark, outcomes, config)
        if observer is not None and report["outcome"] != "failed":
            await _verify(report, fleet, observer, outcomes, config)
    report["config"] = config.public()
    report["target"]["url"] = parent.target_url
    report["target"]["embedded_broker"] = parent.broker_kind
    report["target"]["backend"] = parent.backend_url
    if config.verdicts.slas:
        judge(
            report, evaluate(config.verdicts.slas, report_measures(report)), config.verdicts.junit
        )
    write_outputs(report, config)
    return RunResult(report, report["exit_code"])


def _merge_latency(report: dict[str, Any], outcomes: list[dict[str, Any]]) -> None:
    """Latency percentiles from the shards' merged histograms (not an average of theirs);
    the loop lag likewise, with each process's own beside it."""
    total = Histogram()
    for name, counts in report["by_device_type"].items():
        merged = Histogram()
        for outcome in outcomes:
            state = outcome["histograms"].get(name)
            if state is not None:
                merged.merge(_histogram(state))
        counts["latency_ms"] = merged.summary_ms()
        counts["latency_histogram"] = merged.buckets_ms()
        total.merge(merged)
    report["totals"]["latency_ms"] = total.summary_ms()
    report["totals"]["latency_histogram"] = total.buckets_ms()
    lag = Histogram()
    for outcome in outcomes:
        lag.merge(_histogram((outcome["lag"], *outcome["lag_state"], 0.0)))
    report["time"]["loop_lag_ms"] = lag.summary_ms() if lag.total else None
    report["time"]["loop_lag_ms_by_process"] = [
        o["report"]["time"].get("loop_lag_ms") for o in outcomes
    ]
    report["time"]["loop_lag_warning"] = lag_warning(
        report["time"]["loop_lag_ms"],
        report["totals"]["latency_ms"]["p50"] or None,
        report["target"]["kind"],
    )


def _merge_server_timing(report: dict[str, Any], outcomes: list[dict[str, Any]]) -> None:
    """The target's Server-Timing from the shards' sums, by device type."""
    timings = ServerTimings()
    for outcome in outcomes:
        timings.merge(outcome["server_timing"])
    for counts in report["by_device_type"].values():
        counts.pop("backend", None)
    report.pop("backend", None)
    report.pop("n_plus_one", None)
    put_backend(report, timings.summary(), [])
    if "n_plus_one" in report:  # growth over the run, seen in any shard's own rows
        named = {suspect["name"] for suspect in report["n_plus_one"]}
        for outcome in outcomes:
            rows = outcome["report"].get("timeseries") or []
            for suspect in growth_across_steps([row.get("backend") or {} for row in rows]):
                if suspect["name"] not in named:
                    named.add(suspect["name"])
                    report["n_plus_one"].append(suspect)


def merge_rows(shards: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The shards' time series as one, on simulated time: a merged row at every instant
    some shard took a row (the shards share one grid, anchored at the run's start, so
    these are mostly the same instants). Counts, rates, connections, CPU and memory add up;
    latency and loop lag take the worst shard's (a conservative figure). A shard without a
    row at an instant adds the running counts of its latest row before it (none before its
    first), and nothing else: so the last row counts every shard's messages, and the
    simulated time of the rows only ever grows (a shard that started or ended a snapshot
    off the others' pace no longer makes it step back)."""
    instants = sorted({row["sim"] for rows in shards for row in rows})
    latest: list[dict[str, Any] | None] = [None] * len(shards)
    cursors = [0] * len(shards)
    merged: list[dict[str, Any]] = []
    for sim in instants:
        rows: list[dict[str, Any]] = []
        for i, shard in enumerate(shards):
            here = None
            while cursors[i] < len(shard) and shard[cursors[i]]["sim"] <= sim:
                here = shard[cursors[i]]
                cursors[i] += 1
            if here is not None:
                latest[i] = here
                rows.append(here)
            elif (carried := latest[i]) is not None:
                rows.append({key: carried.get(key) for key in RUNNING_COUNTS} | {"wall_s": 0.0})
        merged.append(_merged_row(sim, rows))
    return merged


def _merged_row(sim: float, rows: list[dict[str, Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {"wall_s": max(r["wall_s"] for r in rows), "sim": sim}
    for key in (*RUNNING_COUNTS, "connected"):
        row[key] = sum(r.get(key) or 0 for r in rows)
    for key in ("rate_per_s", "failed_per_s", "cpu_pct", "rss_mb"):
        row[key] = round(sum(r.get(key) or 0.0 for r in rows), 3)
    settled = row["delivered"] + row["failed"] + row["dropped"]
    failed = row["failed"] + row["dropped"]
    row["error_rate"] = round(failed / settled, 6) if settled else 0.0
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        values = [r[key] for r in rows if r.get(key) is not None]
        row[key] = max(values) if values else None
    lags = [r["loop_lag_ms"] for r in rows if r.get("loop_lag_ms")]
    if lags:
        row["loop_lag_ms"] = {k: max(lag[k] for lag in lags) for k in ("p50", "p99", "max")}
    return row


async def _reconcile(
    report: dict[str, Any],
    fleet: Fleet,
    target: ReadBackTarget,
    mark: str | None,
    outcomes: list[dict[str, Any]],
    config: RunConfig,
) -> None:
    """Delivery accounting once, for every shard's devices, against the target's store."""
    totals = report["totals"]
    try:
        stored = await read_back(
            target,
            fleet.devices.ids,
            expected=totals["acknowledged"] + totals["unconfirmed"],
            patience=config.timing.drain_timeout,
            since=mark,
        )
    except ReadBackError as exc:
        report["outcome"], report["error"] = "failed", str(exc)
        report["exit_code"] = max(report["exit_code"], EXIT_FAILED)
        return
    next_seq, devices, undelivered = _sent_by_shards(fleet, outcomes)
    accounting = stored.tracker.reconcile(next_seq, devices, undelivered)
    accounting.late = stored.late
    report["accounting"] = accounting.as_dict()
    if accounting.lost and not config.verdicts.allow_loss and report["exit_code"] == EXIT_OK:
        report["exit_code"] = EXIT_LOSS


def _sent_by_shards(
    fleet: Fleet, outcomes: list[dict[str, Any]]
) -> tuple[npt.NDArray[np.int64], list[int], set[tuple[int, int]]]:
    """Every shard's devices, the seq each would send next, and what they did not deliver."""
    next_seq = np.zeros(fleet.devices.count, np.int64)
    devices: list[int] = []
    undelivered: set[tuple[int, int]] = set()
    for outcome in outcomes:
        next_seq[outcome["devices"]] = outcome["next_seq"]
        devices += outcome["devices"]
        undelivered.update((int(d), int(s)) for d, s in outcome["undelivered"])
    return next_seq, devices, undelivered


async def _verify(
    report: dict[str, Any],
    fleet: Fleet,
    observer: Observer,
    outcomes: list[dict[str, Any]],
    config: RunConfig,
) -> None:
    """--verify once, for every shard's devices, against the observer on the broker."""
    totals = report["totals"]
    try:
        observed = await observer.settle(
            totals["acknowledged"] + totals["unconfirmed"], config.timing.drain_timeout
        )
    except (BarnstormError, TimeoutError) as exc:
        report["outcome"], report["error"] = "failed", str(exc) or "--verify: no answer"
        report["exit_code"] = max(report["exit_code"], EXIT_FAILED)
        return
    next_seq, devices, undelivered = _sent_by_shards(fleet, outcomes)
    report["verify"] = verification(
        observed,
        fleet.devices.ids,
        next_seq,
        devices,
        undelivered,
        qos=observer.run_qos,
        duplicates_out=totals["duplicates_out"],
        observer=observer,
    )
    lost = report["verify"]["acknowledged_not_delivered"]
    if lost and not config.verdicts.allow_loss and report["exit_code"] == EXIT_OK:
        report["exit_code"] = EXIT_LOSS


def run_parallel(config: RunConfig) -> RunResult:
    """A run of any kind over ``config.processes`` processes: the fleet split by farm,
    one target (the embedded default started once), one merged report."""
    return asyncio.run(_parallel(config, _checked_fleet(config)))


def _checked_fleet(config: RunConfig) -> Fleet:
    """The whole fleet, and the scenario bound to it: bad input is reported here, once,
    not as a crash in every worker."""
    fleet, _ = load_fleet(
        config.fleet.farms,
        config.fleet.seed,
        config.fleet.farms_dir,
        config.fleet.profiles_dir,
        config.fleet.device_types,
        config.fleet.device_map,
    )
    if config.timing.scenario is not None:
        config.timing.scenario.bind(fleet, config.timing.start, config.fleet.seed)
    return fleet
