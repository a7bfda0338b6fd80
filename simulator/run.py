"""A run, from a validated configuration to a report and an exit code.

Everything a run opens (the embedded broker, the transport, the accounting subscriber)
opens and closes here, in one ``async with`` stack, so an interrupted or failed run
still settles its books and writes the report of what it measured.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import json
import logging
import multiprocessing
import os
import resource
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from rich.console import Console

from . import __version__
from .accounting import DeliveryTracker, Reconciliation
from .backend import EmbeddedBackend
from .bridge import ResultStream
from .broker import EmbeddedBroker
from .clock import Clock, ScaledClock, VirtualClock
from .credentials import load_credentials
from .engine import Engine
from .errors import BarnstormError, ConfigError
from .farms import FarmTemplate, load_templates
from .faultproxy import FaultProxy, play_faults
from .fleet import DEFAULT_SEED, Fleet, build_fleet
from .htmlreport import write_html
from .live import LiveView
from .metrics import Metrics
from .models.base import Modulator
from .payload import DEFAULT_TOPIC_TEMPLATE, subscription_filter
from .profiles import DeviceProfile, load_profiles
from .prometheus import PrometheusExporter
from .report import SCHEMA_VERSION, print_summary, write_csv, write_report
from .scenarios import Scenario
from .sla import EXIT_SLA, Sla, Verdict, evaluate, metrics_measures, report_measures, write_junit
from .timeseries import Recorder, trends
from .tls import TlsFiles
from .trace import TraceContext, current_run_id
from .transports.base import Transport
from .transports.file import FileTransport
from .transports.http import HttpTransport
from .transports.memory import MemoryTransport
from .transports.mqtt import MqttSettings, mqtt_transport

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOSS = 4
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs, validated (the CLI builds one from flags, env and files)."""

    farms: int = 10
    seed: int = DEFAULT_SEED
    start: float = 0.0
    duration: float = 60.0  # simulated seconds
    speed: float | None = 1.0  # None: as fast as possible
    mqtt: MqttSettings | None = None
    output: Path | None = None
    http: str | None = None  # ingest URL: POST the payloads there
    http_batch: int = 1
    http2: bool = False
    http_timeout: float = 10.0  # seconds a request may take before it counts as "timeout"
    #: CA bundle, client certificate and verification for https:// targets.
    tls: TlsFiles = field(default_factory=TlsFiles)
    token: str | None = None
    #: a read-back URL (the reference backend's /api/readback) to reconcile against.
    readback: str | None = None
    #: per-device credentials (CSV: device_id and username,password or token).
    credentials: Path | None = None
    memory: bool = False  # in-memory transport (tests, engine benchmarks)
    embedded_broker: str = "auto"
    per_gateway: bool | None = None  # None: per device, except on the embedded broker
    connect_rate: float | None = 500.0
    device_types: tuple[str, ...] | None = None
    topic_template: str = DEFAULT_TOPIC_TEMPLATE
    report: Path | None = None
    farms_dir: Path | None = None
    profiles_dir: Path | None = None
    live: bool = True
    allow_loss: bool = False
    drain_timeout: float = 10.0
    scenario: Scenario | None = field(default=None, compare=False)
    clean: bool = False
    #: worker processes for history output (--output with --speed max).
    processes: int = 1
    #: (index, count): the part of the fleet (by farm) this process runs.
    shard: tuple[int, int] = (0, 1)
    #: stream every result as JSON lines on stdout (the Locust bridge reads them).
    stream_results: bool = False
    #: names this run in the trace context of its HTTP requests and in its report.
    run_id: str = field(default_factory=current_run_id)
    #: what the run must show to pass (--sla); broken ones exit with EXIT_SLA.
    slas: tuple[Sla, ...] = ()
    #: JUnit XML of the SLA verdicts, one test case per SLA.
    junit: Path | None = None
    #: simulated seconds between time-series rows (None: about 300 rows over the run).
    snapshot_every: float | None = None
    #: JSON-lines file the time-series rows go to as they are taken.
    timeseries: Path | None = None
    #: the self-contained HTML report.
    html: Path | None = None
    #: CSV files PREFIX_by_type.csv and PREFIX_timeseries.csv.
    csv: Path | None = None
    #: host:port to serve Prometheus metrics on while the run lasts.
    prometheus: str | None = None
    modulators: tuple[Modulator, ...] = field(default=(), compare=False)

    @property
    def embedded(self) -> bool:
        return self.mqtt is None and self.output is None and not self.memory and self.http is None

    def public(self) -> dict[str, Any]:
        """The configuration as shown in reports: no passwords, plain JSON values."""
        data = asdict(self)
        data.pop("modulators")
        data["scenario"] = self.scenario.source if self.scenario else None
        data["token"] = "***" if self.token else None
        if self.mqtt is not None:
            data["mqtt"] = {**asdict(self.mqtt), "password": "***" if self.mqtt.password else None}
        for key, value in data.items():
            if isinstance(value, Path):
                data[key] = str(value)
        for nested in ("mqtt", "tls"):
            if data[nested]:
                data[nested] = {
                    k: str(v) if isinstance(v, Path) else v for k, v in data[nested].items()
                }
        data["device_types"] = list(self.device_types) if self.device_types else None
        data["slas"] = [sla.text for sla in self.slas]
        return data


@dataclass
class RunResult:
    report: dict[str, Any]
    exit_code: int
    transport: Transport | None = None


def load_fleet(
    farms: int,
    seed: int,
    farms_dir: Path | None,
    profiles_dir: Path | None,
    device_types: tuple[str, ...] | None = None,
) -> tuple[Fleet, dict[str, DeviceProfile]]:
    """Load templates and profiles, check they fit together, and build the fleet."""
    profiles = load_profiles(profiles_dir)
    templates = load_templates(farms_dir)
    check_templates(templates, profiles)
    if device_types:
        unknown = [t for t in device_types if t not in profiles]
        if unknown:
            raise ConfigError(
                "--device-types",
                f'unknown device type "{unknown[0]}" (known: {", ".join(sorted(profiles))})',
            )
    return build_fleet(templates, profiles, farms, seed), profiles


def check_templates(templates: list[FarmTemplate], profiles: Mapping[str, DeviceProfile]) -> None:
    for template in templates:
        for rule in template.devices:
            if rule.device_type not in profiles:
                raise ConfigError(
                    f"{template.source}: devices.{rule.device_type}",
                    f'no device profile for "{rule.device_type}" '
                    f"(known: {', '.join(sorted(profiles))})",
                )


def _tune_process() -> None:
    """Settings of a load generator's process, once the fleet is built:

    - the fleet lives as long as the run, so it leaves the garbage collector's view, and
      messages (made by the hundred thousand, holding no reference cycles) trigger a
      collection less often: a quarter less CPU per message at speed max;
    - the open-files limit rises to its hard limit: one socket per device connection.
    """
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Run:
    """One run of the fleet against one target."""

    def __init__(self, config: RunConfig, console: Console | None = None) -> None:
        self.config = config
        self.console = console or Console(stderr=True)
        self.stop = asyncio.Event()
        self.outcome = "completed"
        self.error: str | None = None
        self.accounting: Reconciliation | None = None
        self.broker_kind: str | None = None
        self.target_url: str | None = None
        self.backend_url: str | None = None
        self.late = 0
        self.bad_input = False

    def request_stop(self) -> None:
        if not self.stop.is_set():
            self.outcome = "interrupted"
            self.stop.set()

    async def execute(self) -> RunResult:
        config = self.config
        fleet, profiles = load_fleet(
            config.farms, config.seed, config.farms_dir, config.profiles_dir, config.device_types
        )
        _tune_process()
        clock: Clock = (
            VirtualClock(config.start)
            if config.speed is None
            else ScaledClock(config.start, config.speed)
        )
        # Per-gateway connections on the embedded broker, and for HTTP batches, which a site
        # gateway collects from its devices; per device otherwise, unless told.
        batched = config.http is not None and config.http_batch > 1
        per_gateway = (
            (config.embedded or batched) if config.per_gateway is None else config.per_gateway
        )
        metrics = Metrics(
            fleet.devices.type_names,
            track_undelivered=config.embedded or config.readback is not None,
        )
        tracker: DeliveryTracker | None = None
        readback = config.readback
        stream = (
            ResultStream(metrics, "http" if config.http else "mqtt")
            if config.stream_results
            else None
        )
        engine: Engine | None = None
        transport: Transport | None = None
        recorder = Recorder(
            metrics,
            clock,
            interval=self._snapshot_interval(),
            path=config.timeseries,
        )
        wall_start = time.monotonic()
        async with contextlib.AsyncExitStack() as stack:
            try:
                mqtt = config.mqtt
                if config.embedded:
                    broker = await stack.enter_async_context(EmbeddedBroker(config.embedded_broker))
                    self.broker_kind = broker.kind
                    mqtt = MqttSettings(host=broker.host, port=broker.port, qos=1)
                    # The whole loop: the reference backend ingests from the broker, serves
                    # its dashboards during the run, and is read back at the end.
                    backend = await stack.enter_async_context(
                        EmbeddedBackend(
                            mqtt.url,
                            subscription_filter(config.topic_template),
                            config.farms,
                            config.seed,
                        )
                    )
                    self.backend_url = backend.url
                    readback = f"{backend.url}/api/readback"
                    self.console.print(
                        f"dashboards: {backend.url}/api/farms (POST /api/login "
                        '{"username": "farmer", "password": "barnstorm"} for a token)'
                    )
                self.target_url = (
                    mqtt.url
                    if mqtt
                    else config.http
                    if config.http
                    else str(config.output)
                    if config.output
                    else None
                )
                http = config.http
                faults = config.scenario.network_faults if config.scenario else []
                proxy: FaultProxy | None = None
                if faults and (mqtt is not None or http is not None):
                    # The scenario's network faults: a fault proxy in front of the target.
                    if mqtt is not None:
                        proxy = FaultProxy(mqtt.host, mqtt.port)
                        await stack.enter_async_context(proxy)
                        mqtt = replace(mqtt, host=proxy.listen_host, port=proxy.port)
                    elif http is not None:
                        parts = urlsplit(http)
                        port = parts.port or (443 if parts.scheme == "https" else 80)
                        proxy = FaultProxy(parts.hostname or "127.0.0.1", port)
                        await stack.enter_async_context(proxy)
                        http = parts._replace(netloc=f"{proxy.listen_host}:{proxy.port}").geturl()
                transport = self._transport(metrics, fleet, mqtt, http)
                await stack.enter_async_context(transport)
                engine = Engine(
                    fleet,
                    profiles,
                    transport,
                    clock,
                    start=config.start,
                    duration=config.duration,
                    seed=config.seed,
                    topic_template=config.topic_template,
                    device_types=config.device_types,
                    per_gateway=per_gateway,
                    connect_rate=config.connect_rate,
                    modulators=config.modulators,
                    scenario=config.scenario,
                    clean=config.clean,
                    shard=config.shard,
                )
                if mqtt is not None and engine.connections:
                    # One connection first: an unreachable broker or a refused login is a
                    # clear error now, not 15,000 failed connections later.
                    await transport.connect(engine.connections[0])
                live = LiveView(metrics, engine, clock, self.console, enabled=config.live)
                async with live.running(), contextlib.AsyncExitStack() as streaming:
                    await streaming.enter_async_context(recorder.running())
                    if stream is not None:
                        await streaming.enter_async_context(stream.running())
                    if proxy is not None:
                        await streaming.enter_async_context(play_faults(proxy, faults, clock))
                    if config.prometheus:
                        await streaming.enter_async_context(
                            PrometheusExporter(config.prometheus, metrics, fleet.devices.type_names)
                        )
                    await engine.run(self.stop)
                await transport.drain(config.drain_timeout if not self.stop.is_set() else 2.0)
            except BarnstormError as exc:
                self.outcome = "failed"
                self.error = str(exc)
                self.bad_input = isinstance(exc, ConfigError)
            except Exception as exc:  # a defect: the report of what was measured still counts
                self.outcome = "failed"
                self.error = f"internal error: {type(exc).__name__}: {exc}"
                log.error("the run failed", exc_info=exc)
            finally:
                if transport is not None:
                    try:
                        await transport.close()
                    except Exception as exc:  # as above: settle the books, report, exit 1
                        self.outcome = "failed"
                        self.error = self.error or f"closing the {transport.name} transport: {exc}"
                        log.error("closing the transport failed", exc_info=exc)
                metrics.finish()
                recorder.close()
                if stream is not None:
                    stream.flush()  # the last results, in-flight-at-stop failures included
            if readback is not None and engine is not None and self.outcome != "failed":
                tracker = await self._read_back(fleet, metrics, readback)
            if tracker is not None and engine is not None:
                self.accounting = tracker.reconcile(
                    engine.next_seq, engine.devices.tolist(), metrics.undelivered or set()
                )
                self.accounting.late = self.late
        report = self._report(
            fleet, metrics, engine, clock, per_gateway, time.monotonic() - wall_start
        )
        if config.slas:
            measures = metrics_measures(
                {name: metrics.by_type[i] for i, name in enumerate(fleet.devices.type_names)},
                metrics.totals(),
                metrics.elapsed(),
                self.accounting.lost if self.accounting else None,
            )
            judge(report, evaluate(config.slas, measures), config.junit)
        report["timeseries"] = recorder.rows
        report["trends"] = trends(recorder.rows)
        write_outputs(report, config)
        return RunResult(report, report["exit_code"], transport)

    def _snapshot_interval(self) -> float:
        """Simulated seconds between time-series rows: as asked, or about 300 rows."""
        config = self.config
        if config.snapshot_every is not None:
            return config.snapshot_every
        if config.speed is None:
            return 1.0  # the recorder takes a row every wall second at --speed max
        wall = config.duration / config.speed
        return min(max(wall / 300, 1.0), 60.0) * config.speed

    def _transport(
        self, metrics: Metrics, fleet: Fleet, mqtt: MqttSettings | None, http: str | None
    ) -> Transport:
        if self.config.memory:
            return MemoryTransport(metrics)
        credentials = (
            load_credentials(self.config.credentials, fleet.devices.ids)
            if self.config.credentials
            else None
        )
        if http is not None:
            return HttpTransport(
                metrics,
                http,
                batch=self.config.http_batch,
                http2=self.config.http2,
                token=self.config.token,
                credentials=credentials,
                trace=TraceContext(self.config.run_id),
                type_names=fleet.devices.type_names,
                timeout=self.config.http_timeout,
                verify=self.config.tls.context() if http.startswith("https://") else True,
            )
        if self.config.output is not None:
            return FileTransport(metrics, self.config.output)
        assert mqtt is not None
        return mqtt_transport(metrics, mqtt, fleet.devices.client_ids, credentials)

    async def _read_back(self, fleet: Fleet, metrics: Metrics, url: str) -> DeliveryTracker | None:
        """Ask the target what it stored, once it stops growing, as a tracker to reconcile."""
        totals = metrics.totals()
        expected = totals.acknowledged + totals.unconfirmed
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.config.drain_timeout if not self.stop.is_set() else 2.0)
        data: dict[str, Any] = {}
        last = -1
        at_end: int | None = None  # what the target held when the run stopped sending
        async with httpx.AsyncClient(timeout=10.0) as client:
            while True:
                try:
                    response = await client.get(url)
                    response.raise_for_status()
                    data = response.json()
                except (httpx.HTTPError, ValueError) as exc:
                    self.error = f"read-back from {url} failed: {exc}"
                    return None
                received = int(data.get("received", 0))
                at_end = received if at_end is None else at_end
                if received >= expected or received == last or loop.time() > deadline:
                    break
                last = received
                await asyncio.sleep(1.0)
        tracker = DeliveryTracker(fleet.devices.ids)
        for device_id, entry in data.get("devices", {}).items():
            index = tracker.index.get(device_id)
            if index is None:
                tracker.unexpected += int(entry.get("received", 0))
                continue
            for low, high in entry.get("seqs", []):
                for seq in range(int(low), int(high) + 1):
                    tracker.record(index, seq)
            tracker.duplicated += int(entry.get("duplicates", 0))
        tracker.malformed += int(data.get("rejected", 0))
        self.late = int(data.get("received", 0)) - (at_end or 0)
        return tracker

    def _exit_code(self) -> int:
        if self.outcome == "failed":
            return EXIT_USAGE if self.bad_input else EXIT_FAILED
        if self.accounting is not None and self.accounting.lost and not self.config.allow_loss:
            return EXIT_LOSS
        if self.outcome == "interrupted":
            return EXIT_INTERRUPTED
        return EXIT_OK

    def _report(
        self,
        fleet: Fleet,
        metrics: Metrics,
        engine: Engine | None,
        clock: Clock,
        per_gateway: bool,
        wall: float,
    ) -> dict[str, Any]:
        config = self.config
        elapsed = metrics.elapsed()
        totals = metrics.totals()
        kind = (
            "memory"
            if config.memory
            else "file"
            if config.output
            else "http"
            if config.http
            else "mqtt"
        )
        return {
            "schema_version": SCHEMA_VERSION,
            "barnstorm_version": __version__,
            "outcome": self.outcome,
            "error": self.error,
            "exit_code": self._exit_code(),
            "target": {
                "kind": kind,
                "url": self.target_url,
                "embedded_broker": self.broker_kind,
                "backend": self.backend_url,
                "qos": (config.mqtt.qos if config.mqtt else 1) if kind == "mqtt" else None,
                "connection": "per-gateway" if per_gateway else "per-device",
            },
            "fleet": {
                "farms": len(fleet.farms),
                "sites": len(fleet.site_ids),
                "rooms": fleet.rooms.count,
                "devices": fleet.devices.count,
                "devices_in_run": len(engine.devices) if engine else 0,
                "seed": fleet.seed,
            },
            "time": {
                "simulated_start": config.start,
                "simulated_end": engine.stats.simulated_until if engine else config.start,
                "speed": config.speed,
                "wall_seconds": round(wall, 3),
                "max_clock_lag_ms": round(clock.max_lag * 1000, 3),
            },
            "totals": totals.as_dict(elapsed),
            "by_device_type": {
                name: metrics.by_type[i].as_dict(elapsed)
                for i, name in enumerate(fleet.devices.type_names)
                if engine is None or not config.device_types or name in config.device_types
            },
            "connections": metrics.connections.as_dict(),
            "accounting": self.accounting.as_dict() if self.accounting else None,
            "config": config.public(),
        }


def write_outputs(report: dict[str, Any], config: RunConfig) -> None:
    """The JSON report first (it holds everything), then the HTML page and the CSV files."""
    if config.report is not None:
        write_report(report, config.report)
    if config.html is not None:
        write_html(report, config.html)
    if config.csv is not None:
        write_csv(report, config.csv)


def judge(report: dict[str, Any], verdicts: list[Verdict], junit: Path | None) -> None:
    """Put the SLA verdicts into ``report`` (and ``junit``); a broken SLA turns a run that
    would exit 0 or EXIT_LOSS into EXIT_SLA."""
    report["sla"] = [verdict.as_dict() for verdict in verdicts]
    if any(not verdict.held for verdict in verdicts) and report["exit_code"] in (
        EXIT_OK,
        EXIT_LOSS,
    ):
        report["exit_code"] = EXIT_SLA
    if junit is not None:
        write_junit(verdicts, junit, report["time"]["wall_seconds"], "barnstorm SLAs")


def _run_shard(config: RunConfig) -> dict[str, Any]:
    """One process of a sharded history run (module level: it crosses a process boundary)."""
    return asyncio.run(Run(config, Console(stderr=True, quiet=True)).execute()).report


def run_sharded(config: RunConfig) -> RunResult:
    """History over several processes: each writes the farms of its shard to a part file,
    then the parts are joined in shard order (each part is in time order)."""
    assert config.output is not None
    # Bad input is reported here, once, not as a crash in every worker.
    fleet, _ = load_fleet(
        config.farms, config.seed, config.farms_dir, config.profiles_dir, config.device_types
    )
    if config.scenario is not None:
        config.scenario.bind(fleet, config.start, config.seed)
    count = config.processes
    parts = [config.output.with_name(f".{config.output.name}.part{i}") for i in range(count)]
    shards = [
        replace(config, output=part, shard=(i, count), processes=1, report=None, live=False)
        for i, part in enumerate(parts)
    ]
    started = time.monotonic()
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(count, mp_context=context) as pool:
        reports = list(pool.map(_run_shard, shards))
    try:
        with config.output.open("wb") as joined:
            for part in parts:
                with part.open("rb") as piece:
                    shutil.copyfileobj(piece, joined, 1 << 22)
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
    report = merge_reports(reports, time.monotonic() - started)
    report["config"] = config.public()
    report["target"]["url"] = str(config.output)
    if config.slas:
        judge(report, evaluate(config.slas, report_measures(report)), config.junit)
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
    merged["time"]["wall_seconds"] = round(wall, 3)
    merged["time"]["processes"] = len(reports)
    for counts in (merged["totals"], *merged["by_device_type"].values()):
        delivered = counts["acknowledged"] + counts["unconfirmed"]
        counts["rate_per_s"] = round(delivered / wall, 3) if wall > 0 else 0.0
    return merged


def _summary_console(config: RunConfig) -> Console:
    """Where the end-of-run summary goes: stdout, or stderr when stdout carries the
    streamed results; wide when it is not a terminal (logs, pipes)."""
    stream = sys.stderr if config.stream_results else sys.stdout
    console = Console(file=stream)
    return console if console.is_terminal else Console(file=stream, width=160)


def _quiet_client_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """gmqtt's own tasks can fail inside gmqtt when a connection drops mid-reconnect; the
    transport counts the lost connection, so those tracebacks go to the debug log instead
    of flooding the terminal during a network fault. Anything else is reported as usual."""
    error = context.get("exception")
    frames = traceback.extract_tb(error.__traceback__) if error is not None else []
    if any(f"{os.sep}gmqtt{os.sep}" in frame.filename for frame in frames):
        log.debug("gmqtt internal error after a lost connection: %r", error)
        return
    loop.default_exception_handler(context)


def run_blocking(
    config: RunConfig, *, summary: bool = True, on_start: Callable[[Run], None] | None = None
) -> RunResult:
    """Run ``config`` in a fresh event loop; Ctrl-C and SIGTERM stop it cleanly."""

    if config.processes > 1:
        result = run_sharded(config)
        if summary:
            print_summary(result.report, _summary_console(config))
        return result

    async def main() -> RunResult:
        run = Run(config)
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_quiet_client_errors)
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, run.request_stop)
        if on_start is not None:
            on_start(run)
        result = await run.execute()
        if summary:
            print_summary(result.report, _summary_console(config))
        return result

    return asyncio.run(main())


__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_LOSS",
    "EXIT_OK",
    "EXIT_SLA",
    "EXIT_USAGE",
    "Run",
    "RunConfig",
    "RunResult",
    "load_fleet",
    "run_blocking",
]
