"""A run, from a validated configuration to a report and an exit code.

Everything a run opens (the embedded broker, the transport, the accounting subscriber)
opens and closes here, in one ``async with`` stack, so an interrupted or failed run
still settles its books and writes the report of what it measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import resource
import time
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from rich.console import Console

from simulator import __version__
from simulator.backend.broker import EmbeddedBroker
from simulator.backend.launcher import EmbeddedBackend
from simulator.engine.clock import Clock, ScaledClock, VirtualClock
from simulator.engine.engine import Engine
from simulator.errors import BarnstormError, ConfigError
from simulator.exitcodes import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_LOSS,
    EXIT_OK,
    EXIT_SLA,
    EXIT_USAGE,
)
from simulator.fleet.build import Fleet
from simulator.fleet.credentials import load_credentials
from simulator.fleet.load import load_fleet
from simulator.fleet.topics import subscription_filter
from simulator.metrics.accounting import DeliveryTracker, Reconciliation
from simulator.metrics.live import LiveView
from simulator.metrics.metrics import Metrics
from simulator.metrics.prometheus import PrometheusExporter
from simulator.metrics.sla import (
    Verdict,
    evaluate,
    metrics_measures,
    write_junit,
)
from simulator.metrics.timeseries import Recorder, trends
from simulator.report.files import SCHEMA_VERSION, write_csv, write_report
from simulator.report.html import write_html
from simulator.runner.bridge import ResultStream
from simulator.runner.config import RunConfig, RunResult
from simulator.trace import TraceContext
from simulator.transports.base import Transport
from simulator.transports.faultproxy import FaultProxy, play_faults
from simulator.transports.file import FileTransport
from simulator.transports.http import HttpTransport
from simulator.transports.memory import MemoryTransport
from simulator.transports.mqtt.factory import mqtt_transport
from simulator.transports.mqtt.settings import MqttSettings

log = logging.getLogger(__name__)


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
            config.fleet.farms,
            config.fleet.seed,
            config.fleet.farms_dir,
            config.fleet.profiles_dir,
            config.fleet.device_types,
        )
        _tune_process()
        clock: Clock = (
            VirtualClock(config.timing.start)
            if config.timing.speed is None
            else ScaledClock(config.timing.start, config.timing.speed)
        )
        # Per-gateway connections on the embedded broker, and for HTTP batches, which a site
        # gateway collects from its devices; per device otherwise, unless told.
        batched = config.target.http is not None and config.target.http_batch > 1
        per_gateway = (
            (config.target.embedded or batched)
            if config.target.per_gateway is None
            else config.target.per_gateway
        )
        metrics = Metrics(
            fleet.devices.type_names,
            track_undelivered=config.target.embedded or config.target.readback is not None,
        )
        tracker: DeliveryTracker | None = None
        readback = config.target.readback
        stream = (
            ResultStream(metrics, "http" if config.target.http else "mqtt")
            if config.outputs.stream_results
            else None
        )
        engine: Engine | None = None
        transport: Transport | None = None
        recorder = Recorder(
            metrics,
            clock,
            interval=self._snapshot_interval(),
            path=config.outputs.timeseries,
        )
        wall_start = time.monotonic()
        async with contextlib.AsyncExitStack() as stack:
            try:
                mqtt = config.target.mqtt
                if config.target.embedded:
                    broker = await stack.enter_async_context(
                        EmbeddedBroker(config.target.embedded_broker)
                    )
                    self.broker_kind = broker.kind
                    mqtt = MqttSettings(host=broker.host, port=broker.port, qos=1)
                    # The whole loop: the reference backend ingests from the broker, serves
                    # its dashboards during the run, and is read back at the end.
                    backend = await stack.enter_async_context(
                        EmbeddedBackend(
                            mqtt.url,
                            subscription_filter(config.fleet.topic_template),
                            config.fleet.farms,
                            config.fleet.seed,
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
                    else config.target.http
                    if config.target.http
                    else str(config.target.output)
                    if config.target.output
                    else None
                )
                http = config.target.http
                faults = config.timing.scenario.network_faults if config.timing.scenario else []
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
                    start=config.timing.start,
                    duration=config.timing.duration,
                    seed=config.fleet.seed,
                    topic_template=config.fleet.topic_template,
                    device_types=config.fleet.device_types,
                    per_gateway=per_gateway,
                    connect_rate=config.timing.connect_rate,
                    modulators=config.timing.modulators,
                    scenario=config.timing.scenario,
                    clean=config.fleet.clean,
                    shard=config.fleet.shard,
                )
                if mqtt is not None and engine.connections:
                    # One connection first: an unreachable broker or a refused login is a
                    # clear error now, not 15,000 failed connections later.
                    await transport.connect(engine.connections[0])
                live = LiveView(
                    metrics,
                    (engine.start, engine.end),
                    clock,
                    self.console,
                    enabled=config.outputs.live,
                )
                async with live.running(), contextlib.AsyncExitStack() as streaming:
                    await streaming.enter_async_context(recorder.running())
                    if stream is not None:
                        await streaming.enter_async_context(stream.running())
                    if proxy is not None:
                        await streaming.enter_async_context(play_faults(proxy, faults, clock))
                    if config.outputs.prometheus:
                        await streaming.enter_async_context(
                            PrometheusExporter(
                                config.outputs.prometheus, metrics, fleet.devices.type_names
                            )
                        )
                    await engine.run(self.stop)
                await transport.drain(
                    config.timing.drain_timeout if not self.stop.is_set() else 2.0
                )
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
        if config.verdicts.slas:
            measures = metrics_measures(
                {name: metrics.by_type[i] for i, name in enumerate(fleet.devices.type_names)},
                metrics.totals(),
                metrics.elapsed(),
                self.accounting.lost if self.accounting else None,
            )
            judge(report, evaluate(config.verdicts.slas, measures), config.verdicts.junit)
        report["timeseries"] = recorder.rows
        report["trends"] = trends(recorder.rows)
        write_outputs(report, config)
        return RunResult(report, report["exit_code"], transport)

    def _snapshot_interval(self) -> float:
        """Simulated seconds between time-series rows: as asked, or about 300 rows."""
        config = self.config
        if config.outputs.snapshot_every is not None:
            return config.outputs.snapshot_every
        if config.timing.speed is None:
            return 1.0  # the recorder takes a row every wall second at --speed max
        wall = config.timing.duration / config.timing.speed
        return min(max(wall / 300, 1.0), 60.0) * config.timing.speed

    def _transport(
        self, metrics: Metrics, fleet: Fleet, mqtt: MqttSettings | None, http: str | None
    ) -> Transport:
        if self.config.target.memory:
            return MemoryTransport(metrics)
        credentials = (
            load_credentials(self.config.fleet.credentials, fleet.devices.ids)
            if self.config.fleet.credentials
            else None
        )
        if http is not None:
            return HttpTransport(
                metrics,
                http,
                batch=self.config.target.http_batch,
                http2=self.config.target.http2,
                token=self.config.target.token,
                credentials=credentials,
                trace=TraceContext(self.config.run_id),
                type_names=fleet.devices.type_names,
                timeout=self.config.target.http_timeout,
                verify=self.config.target.tls.context() if http.startswith("https://") else True,
            )
        if self.config.target.output is not None:
            return FileTransport(metrics, self.config.target.output)
        assert mqtt is not None
        return mqtt_transport(metrics, mqtt, fleet.devices.client_ids, credentials)

    async def _read_back(self, fleet: Fleet, metrics: Metrics, url: str) -> DeliveryTracker | None:
        """Ask the target what it stored, once it stops growing, as a tracker to reconcile."""
        totals = metrics.totals()
        expected = totals.acknowledged + totals.unconfirmed
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (
            self.config.timing.drain_timeout if not self.stop.is_set() else 2.0
        )
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
        if (
            self.accounting is not None
            and self.accounting.lost
            and not self.config.verdicts.allow_loss
        ):
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
            if config.target.memory
            else "file"
            if config.target.output
            else "http"
            if config.target.http
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
                "qos": (config.target.mqtt.qos if config.target.mqtt else 1)
                if kind == "mqtt"
                else None,
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
                "simulated_start": config.timing.start,
                "simulated_end": engine.stats.simulated_until if engine else config.timing.start,
                "speed": config.timing.speed,
                "wall_seconds": round(wall, 3),
                "max_clock_lag_ms": round(clock.max_lag * 1000, 3),
            },
            "totals": totals.as_dict(elapsed),
            "by_device_type": {
                name: metrics.by_type[i].as_dict(elapsed)
                for i, name in enumerate(fleet.devices.type_names)
                if engine is None
                or not config.fleet.device_types
                or name in config.fleet.device_types
            },
            "connections": metrics.connections.as_dict(),
            "accounting": self.accounting.as_dict() if self.accounting else None,
            "config": config.public(),
        }


def write_outputs(report: dict[str, Any], config: RunConfig) -> None:
    """The JSON report first (it holds everything), then the HTML page and the CSV files."""
    if config.outputs.report is not None:
        write_report(report, config.outputs.report)
    if config.outputs.html is not None:
        write_html(report, config.outputs.html)
    if config.outputs.csv is not None:
        write_csv(report, config.outputs.csv)


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
