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
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console

from simulator import __version__
from simulator.backend.broker import EmbeddedBroker
from simulator.backend.launcher import EmbeddedBackend
from simulator.engine.clock import Clock, ScaledClock, VirtualClock
from simulator.engine.engine import Engine
from simulator.errors import BarnstormError, ConfigError
from simulator.exitcodes import (
    EXIT_FAILED,
    EXIT_FAILURES,
    EXIT_INTERRUPTED,
    EXIT_LOSS,
    EXIT_OK,
    EXIT_USAGE,
)
from simulator.fleet.build import Fleet
from simulator.fleet.load import load_fleet
from simulator.fleet.profiles import DeviceProfile
from simulator.fleet.topics import subscription_filter
from simulator.metrics.accounting import Reconciliation
from simulator.metrics.live import LiveView
from simulator.metrics.loop_lag import LoopLag, lag_warning
from simulator.metrics.metrics import Metrics
from simulator.metrics.prometheus import PrometheusExporter
from simulator.metrics.sla import (
    evaluate,
    metrics_measures,
)
from simulator.metrics.timeseries import Recorder, trends
from simulator.redact import protect, redact_url
from simulator.report.files import SCHEMA_VERSION
from simulator.runner.bridge import ResultStream
from simulator.runner.config import RunConfig, RunResult
from simulator.runner.delivery import FailedShare, Ramp, judge_delivery
from simulator.runner.network_faults import play_faults
from simulator.runner.outputs import judge, put_backend, write_outputs
from simulator.runner.target import build_transport
from simulator.runner.traces import collect, device_flows, receiving
from simulator.runner.verify import observer_for, verification
from simulator.traces.export import ClientSpans
from simulator.traces.receiver import Receiver
from simulator.transports.base import Transport
from simulator.transports.faultproxy import FaultProxy
from simulator.transports.mqtt.observer import Observer
from simulator.transports.mqtt.settings import MqttSettings
from simulator.transports.readback import ReadBackError, ReadBackTarget, read_back, take_mark

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
        self.bad_input = False
        #: what --verify's observer found (the report's ``verify``), once it answered.
        self.verification: dict[str, Any] | None = None
        #: the read-back mark taken at the start (None: the target has none).
        self.readback_mark: str | None = None
        #: the --max-failed verdict, once the run got messages through.
        self.failed_share: FailedShare | None = None
        #: what the backend's spans said (the report's ``traces``), once they came.
        self.traces: dict[str, Any] | None = None
        #: barnstorm's own event-loop lag while the fleet ran.
        self.loop_lag = LoopLag()
        #: barnstorm's own client spans (--otlp-export), and what became of them.
        export = config.traces.otlp_export
        self.exporter = ClientSpans(export, config.run_id) if export else None
        self.client_spans: dict[str, Any] | None = None
        protect(config.secrets(), config.secret_urls())
        #: the run's engine, books and transport, once it ran (a parallel run's parent
        #: reads them).
        self.transport: Transport | None = None
        self.engine: Engine | None = None
        self.metrics: Metrics | None = None

    def request_stop(self) -> None:
        if not self.stop.is_set():
            self.outcome = "interrupted"
            self.stop.set()

    async def execute(self) -> RunResult:
        """Run the fleet against the target, settle the books, judge and write the report.

        Whatever happens inside (a refused connection, an interrupt, a defect), the books
        are settled and the report of what was measured is written.
        """
        config = self.config
        fleet, profiles = load_fleet(
            config.fleet.farms,
            config.fleet.seed,
            config.fleet.farms_dir,
            config.fleet.profiles_dir,
            config.fleet.device_types,
            config.fleet.device_map,
        )
        _tune_process()
        clock, metrics, stream, recorder = self._instruments(fleet)
        per_gateway = self._per_gateway()
        engine: Engine | None = None
        transport: Transport | None = None
        observer: Observer | None = None
        readback = config.target.readback
        receiver: Receiver | None = None
        wall_start = time.monotonic()
        async with contextlib.AsyncExitStack() as stack:
            try:
                receiver = await stack.enter_async_context(receiving(config))
                mqtt, http, readback = await self._open_target(stack)
                if readback is not None:
                    self.readback_mark = await self._mark(readback)
                if mqtt is not None and config.target.verify:
                    # On the broker itself, subscribed before any device connects.
                    observer = await stack.enter_async_context(
                        observer_for(
                            mqtt,
                            config.fleet.topic_template,
                            config.target.verify,
                            config.run_id,
                        )
                    )
                mqtt, http, proxy = await self._fault_proxy(stack, mqtt, http)
                transport = build_transport(config, metrics, fleet, mqtt, http, self.exporter)
                self.transport = transport
                await stack.enter_async_context(transport)
                engine = self._engine(fleet, profiles, transport, clock, per_gateway)
                self.engine = engine
                if mqtt is not None and engine.connections:
                    # One connection first: an unreachable broker or a refused login is a
                    # clear error now, not 15,000 failed connections later.
                    await transport.connect(engine.connections[0])
                await self._drive(engine, fleet, metrics, clock, recorder, stream, proxy)
                await transport.drain(self._drain_seconds())
            except Exception as exc:  # the report of what was measured still counts
                self._failed(exc)
            finally:
                await self._settle(transport, metrics, recorder, stream)
                if self.exporter is not None:  # sent before the receiver's last wait
                    self.client_spans = await asyncio.to_thread(self.exporter.close)
            if readback is not None and engine is not None and self.outcome != "failed":
                await self._reconcile(fleet, engine, metrics, readback)
            if observer is not None and engine is not None and self.outcome != "failed":
                await self._verify(observer, fleet, engine, metrics)
            if receiver is not None and engine is not None:
                self.traces = await collect(receiver, *device_flows(config, fleet, metrics))
        if engine is not None:
            self._judge_delivery(engine, metrics)
        report = self._report(
            fleet, metrics, engine, clock, per_gateway, time.monotonic() - wall_start
        )
        self._judge(report, fleet, metrics)
        report["timeseries"] = recorder.rows
        report["trends"] = trends(recorder.rows)
        self._backend_timing(report, metrics, recorder.rows)
        write_outputs(report, config)
        return RunResult(report, report["exit_code"], transport)

    def _failed(self, exc: Exception) -> None:
        """Note why the run failed: barnstorm's own errors (also when a task group wrapped
        them) as their one line, anything else as a defect, with its traceback logged."""
        error = first_error(exc)
        self.outcome = "failed"
        if isinstance(error, BarnstormError):
            self.error = str(error)
            self.bad_input = isinstance(error, ConfigError)
        else:
            self.error = f"internal error: {type(error).__name__}: {error}"
            log.error("the run failed", exc_info=exc)

    def _instruments(self, fleet: Fleet) -> tuple[Clock, Metrics, ResultStream | None, Recorder]:
        """The run's clock, its metrics, the result stream (for the Locust bridge) and the
        time-series recorder, all watching barnstorm's own loop lag."""
        config = self.config
        clock: Clock = (
            VirtualClock(config.timing.start)
            if config.timing.speed is None
            else ScaledClock(config.timing.start, config.timing.speed)
        )
        metrics = Metrics(
            fleet.devices.type_names,
            track_undelivered=config.target.embedded
            or config.target.readback is not None
            or config.target.verify > 0
            or config.reconciled_by_parent,
        )
        self.metrics = metrics
        stream = (
            ResultStream(metrics, "http" if config.target.http else "mqtt")
            if config.outputs.stream_results
            else None
        )
        recorder = Recorder(
            metrics, clock, interval=self._snapshot_interval(), path=config.outputs.timeseries
        )
        recorder.lag = self.loop_lag
        if stream is not None:
            stream.lag = self.loop_lag
        return clock, metrics, stream, recorder

    @staticmethod
    def _backend_timing(
        report: dict[str, Any], metrics: Metrics, rows: list[dict[str, Any]]
    ) -> None:
        put_backend(report, metrics.server_timings.summary(), rows)

    def _per_gateway(self) -> bool:
        """Per-gateway connections on the embedded broker, and for HTTP batches, which a
        site gateway collects from its devices; per device otherwise, unless told."""
        target = self.config.target
        if target.per_gateway is not None:
            return target.per_gateway
        return target.embedded or (target.http is not None and target.http_batch > 1)

    def _drain_seconds(self) -> float:
        return self.config.timing.drain_timeout if not self.stop.is_set() else 2.0

    async def _open_target(
        self, stack: contextlib.AsyncExitStack
    ) -> tuple[MqttSettings | None, str | None, ReadBackTarget | None]:
        """The target's MQTT settings, ingest URL and read-back URL. On the embedded default,
        the whole loop starts here: a broker, and the reference backend ingesting from it,
        serving its dashboards during the run, read back at the end."""
        config = self.config
        mqtt, http, readback = config.target.mqtt, config.target.http, config.target.readback
        if config.target.embedded:
            broker = await stack.enter_async_context(EmbeddedBroker(config.target.embedded_broker))
            self.broker_kind = broker.kind
            mqtt = MqttSettings(host=broker.host, port=broker.port, qos=1)
            backend = await stack.enter_async_context(
                EmbeddedBackend(
                    mqtt.url,
                    subscription_filter(config.fleet.topic_template),
                    config.fleet.farms,
                    config.fleet.seed,
                )
            )
            self.backend_url = backend.url
            readback = ReadBackTarget(f"{backend.url}/api/readback", backend.readback_token)
            self.console.print(
                f"dashboards: {backend.url}/api/farms (POST /api/login "
                '{"username": "farmer", "password": "barnstorm"} for a token)'
            )
        output = config.target.output
        self.target_url = (
            mqtt.url if mqtt else redact_url(http) if http else str(output) if output else None
        )
        return mqtt, http, readback

    async def _fault_proxy(
        self, stack: contextlib.AsyncExitStack, mqtt: MqttSettings | None, http: str | None
    ) -> tuple[MqttSettings | None, str | None, FaultProxy | None]:
        """With a scenario's network faults, a fault proxy in front of the target: the
        transport connects to the proxy instead."""
        scenario = self.config.timing.scenario
        if not (scenario and scenario.network_faults) or (mqtt is None and http is None):
            return mqtt, http, None
        if mqtt is not None:
            proxy = FaultProxy(mqtt.host, mqtt.port)
            await stack.enter_async_context(proxy)
            return replace(mqtt, host=proxy.listen_host, port=proxy.port), http, proxy
        assert http is not None
        parts = urlsplit(http)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        proxy = FaultProxy(parts.hostname or "127.0.0.1", port)
        await stack.enter_async_context(proxy)
        return mqtt, parts._replace(netloc=f"{proxy.listen_host}:{proxy.port}").geturl(), proxy

    def _engine(
        self,
        fleet: Fleet,
        profiles: dict[str, DeviceProfile],
        transport: Transport,
        clock: Clock,
        per_gateway: bool,
    ) -> Engine:
        config = self.config
        return Engine(
            fleet,
            profiles,
            transport,
            clock,
            start=config.timing.start,
            duration=config.timing.duration,
            seed=config.fleet.seed,
            topic_template=config.fleet.topic_template,
            device_types=config.fleet.device_types,
            kinds=config.fleet.kinds,
            per_gateway=per_gateway,
            connect_rate=config.timing.connect_rate,
            modulators=config.timing.modulators,
            scenario=config.timing.scenario,
            clean=config.fleet.clean,
            shard=config.fleet.shard,
        )

    async def _drive(
        self,
        engine: Engine,
        fleet: Fleet,
        metrics: Metrics,
        clock: Clock,
        recorder: Recorder,
        stream: ResultStream | None,
        proxy: FaultProxy | None,
    ) -> None:
        """Run the engine to its end (or a stop), with everything that watches it: the live
        view, the time series, the result stream, the fault schedule, Prometheus."""
        outputs = self.config.outputs
        live = LiveView(
            metrics,
            (engine.start, engine.end),
            clock,
            self.console,
            enabled=outputs.live,
            output=self.config.target.output,
        )
        async with live.running(), contextlib.AsyncExitStack() as watching:
            await watching.enter_async_context(self.loop_lag.running())
            await watching.enter_async_context(recorder.running())
            if stream is not None:
                await watching.enter_async_context(stream.running())
            scenario = self.config.timing.scenario
            if proxy is not None and scenario is not None:
                await watching.enter_async_context(
                    play_faults(proxy, scenario.network_faults, clock)
                )
            if outputs.prometheus:
                await watching.enter_async_context(
                    PrometheusExporter(outputs.prometheus, metrics, fleet.devices.type_names)
                )
            await engine.run(self.stop)

    async def _settle(
        self,
        transport: Transport | None,
        metrics: Metrics,
        recorder: Recorder,
        stream: ResultStream | None,
    ) -> None:
        """Close the transport (what it still holds is settled as failed) and the books."""
        if transport is not None:
            try:
                await transport.close()
            except Exception as exc:  # as in execute: settle the books, report, exit 1
                self.outcome = "failed"
                self.error = self.error or f"closing the {transport.name} transport: {exc}"
                if not isinstance(exc, OSError):  # a full disk is the machine's, not a defect
                    log.error("closing the transport failed", exc_info=exc)
        metrics.finish(held=transport.in_flight if transport is not None else 0)
        recorder.close()
        if stream is not None:
            stream.flush()  # the last results, in-flight-at-stop failures included

    async def _mark(self, target: ReadBackTarget) -> str | None:
        """Where this run's read-back starts, in the target's time: a second run against
        the same backend reconciles against its own messages only."""
        mark = await take_mark(target)
        if mark is None:
            self.console.print(
                f"[yellow]read-back: {target.shown} takes no marks; the reconciliation covers "
                "everything the target holds, earlier runs' messages included[/]"
            )
        return mark

    async def _reconcile(
        self, fleet: Fleet, engine: Engine, metrics: Metrics, target: ReadBackTarget
    ) -> None:
        """What the target stored against what was sent, per device and sequence number."""
        totals = metrics.totals()
        try:
            stored = await read_back(
                target,
                fleet.devices.ids,
                expected=totals.acknowledged + totals.unconfirmed,
                patience=self._drain_seconds(),
                since=self.readback_mark,
            )
        except ReadBackError as exc:
            # Nothing can be said about delivery: the run does not pass.
            self.outcome = "failed"
            self.error = str(exc)
            return
        self.accounting = stored.tracker.reconcile(
            engine.next_seq, engine.devices.tolist(), metrics.undelivered or set()
        )
        self.accounting.late = stored.late

    async def _verify(
        self, observer: Observer, fleet: Fleet, engine: Engine, metrics: Metrics
    ) -> None:
        """What the independent subscriber received against what was sent."""
        totals = metrics.totals()
        try:
            observed = await observer.settle(
                totals.acknowledged + totals.unconfirmed, self._drain_seconds()
            )
        except (BarnstormError, TimeoutError) as exc:
            self.outcome = "failed"
            self.error = str(exc) or "--verify: the observer did not answer"
            return
        self.verification = verification(
            observed,
            fleet.devices.ids,
            engine.next_seq,
            engine.devices.tolist(),
            metrics.undelivered or set(),
            qos=observer.run_qos,
            duplicates_out=totals.duplicates_out,
            observer=observer,
        )

    def _judge_delivery(self, engine: Engine, metrics: Metrics) -> None:
        """A completed run that got nothing through fails, saying why; one that did gets
        the --max-failed verdict."""
        ramp = Ramp(
            connections=len(engine.connections),
            devices=len(engine.devices),
            started=engine.stats.connected_devices,
            duration=engine.end - engine.start,
            speed=self.config.timing.speed,
            shortest_interval=min((s.spec.interval for s in engine.schedules), default=0.0),
            connect_rate=self.config.timing.connect_rate,
        )
        error, self.failed_share = judge_delivery(
            metrics.totals(),
            self.outcome == "completed",
            ramp,
            self.target_url,
            self.config.verdicts.max_failed,
        )
        if error is not None:
            self.outcome, self.error = "failed", error

    def _judge(self, report: dict[str, Any], fleet: Fleet, metrics: Metrics) -> None:
        slas = self.config.verdicts.slas
        if not slas:
            return
        measures = metrics_measures(
            {name: metrics.by_type[i] for i, name in enumerate(fleet.devices.type_names)},
            metrics.totals(),
            metrics.elapsed(),
            self.accounting.lost if self.accounting else None,
        )
        judge(report, evaluate(slas, measures), self.config.verdicts.junit)

    def _snapshot_interval(self) -> float:
        """Simulated seconds between time-series rows: as asked, or about 300 rows."""
        config = self.config
        if config.outputs.snapshot_every is not None:
            return config.outputs.snapshot_every
        if config.timing.speed is None:
            return 1.0  # the recorder takes a row every wall second at --speed max
        wall = config.timing.duration / config.timing.speed
        return min(max(wall / 300, 1.0), 60.0) * config.timing.speed

    def _exit_code(self) -> int:
        if self.outcome == "failed":
            return EXIT_USAGE if self.bad_input else EXIT_FAILED
        lost = (self.accounting is not None and self.accounting.lost) or (
            self.verification is not None and self.verification["acknowledged_not_delivered"]
        )
        if lost and not self.config.verdicts.allow_loss:
            return EXIT_LOSS
        if self.outcome == "interrupted":
            return EXIT_INTERRUPTED
        if self.failed_share is not None and not self.failed_share.held:
            return EXIT_FAILURES
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
            "max_failed": self.failed_share.as_dict() if self.failed_share else None,
            "target": {
                "kind": kind,
                "url": self.target_url,
                "embedded_broker": self.broker_kind,
                "backend": self.backend_url,
                "qos": (config.target.mqtt.qos if config.target.mqtt else 1)
                if kind == "mqtt"
                else None,
                "connection": "per-gateway" if per_gateway else "per-device",
                **(self.transport.facts() if self.transport is not None else {}),
            },
            "fleet": {
                "farms": len(fleet.farms),
                "sites": len(fleet.site_ids),
                "rooms": fleet.rooms.count,
                "devices": fleet.devices.count,
                "devices_in_run": len(engine.devices) if engine else 0,
                "seed": fleet.seed,
                "device_map": fleet.device_map,
            },
            "time": {
                "simulated_start": config.timing.start,
                "simulated_end": engine.stats.simulated_until if engine else config.timing.start,
                "speed": config.timing.speed,
                "wall_seconds": round(wall, 3),
                "max_clock_lag_ms": round(clock.max_lag * 1000, 3),
                "loop_lag_ms": self.loop_lag.summary(),
                "loop_lag_warning": lag_warning(
                    self.loop_lag.summary(), totals.latency.summary_ms()["p50"] or None, kind
                ),
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
            "verify": self.verification,
            "traces": self.traces,
            "client_spans": self.client_spans,
            "config": config.public(),
        }


def first_error(exc: BaseException) -> BaseException:
    """The first error inside (nested) exception groups, or ``exc`` itself: a task group
    wraps what its body raised, so a refused --prometheus port arrives as a group."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
