"""What a run needs, validated once and frozen, and what it returns.

A :class:`RunConfig` is five small configs, one per concern, each frozen and typed:
the fleet (which devices), the timing (when, how fast, which events), the target (where
the messages go), the outputs (what is written and shown) and the verdicts (what the run
must show). The CLI builds them from flags, environment and config files; code after it
passes these objects, never dicts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from simulator.engine.scenarios import Scenario
from simulator.fleet.build import DEFAULT_SEED
from simulator.fleet.topics import DEFAULT_TOPIC_TEMPLATE
from simulator.metrics.sla import Sla
from simulator.models.base import Modulator
from simulator.redact import MASK, redact_url
from simulator.traces.context import current_run_id
from simulator.transports.base import Transport
from simulator.transports.http_names import ClientName
from simulator.transports.mqtt.settings import MqttSettings
from simulator.transports.readback import ReadBackTarget
from simulator.transports.tls import TlsFiles


@dataclass(frozen=True)
class FleetConfig:
    """Which devices run: the fleet built from the seed, and this process's part of it."""

    farms: int = 10
    seed: int = DEFAULT_SEED
    farms_dir: Path | None = None
    profiles_dir: Path | None = None
    device_types: tuple[str, ...] | None = None
    #: only these message kinds are generated (None: all).
    kinds: tuple[str, ...] | None = None
    topic_template: str = DEFAULT_TOPIC_TEMPLATE
    #: no fleet imperfections (jitter, drift, duplicates, sensor faults, firmware variants).
    clean: bool = False
    #: per-device credentials (CSV: device_id and username,password or token).
    credentials: Path | None = None
    #: the product's provisioned devices (CSV: device_id, type, farm_id, room_id).
    device_map: Path | None = None
    #: (index, count): the part of the fleet (by farm) this process runs.
    shard: tuple[int, int] = (0, 1)


@dataclass(frozen=True)
class TimingConfig:
    """When the run starts, how long and how fast it runs, and what happens meanwhile."""

    start: float = 0.0  # simulated epoch seconds
    duration: float = 60.0  # simulated seconds
    speed: float | None = 1.0  # None: as fast as possible
    #: new connections per second during the ramp (None: all at once).
    connect_rate: float | None = 500.0
    #: real seconds the end of a run waits for outstanding acknowledgements.
    drain_timeout: float = 10.0
    scenario: Scenario | None = field(default=None, compare=False)
    modulators: tuple[Modulator, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class TargetConfig:
    """Where the messages go: a broker, an ingest URL, a file, memory, or the embedded
    default (a broker and the reference backend started for the run)."""

    mqtt: MqttSettings | None = None
    output: Path | None = None
    http: str | None = None  # ingest URL: POST the payloads there
    http_batch: int = 1
    http2: bool = False
    #: the HTTP client under --http: "auto" (aiohttp; httpx for HTTP/2), "aiohttp", "httpx".
    http_client: ClientName = "auto"
    http_timeout: float = 10.0  # seconds a request may take before it counts as "timeout"
    #: CA bundle, client certificate and verification for https:// targets.
    tls: TlsFiles = field(default_factory=TlsFiles)
    token: str | None = None
    #: a read-back (the reference backend's /api/readback, and its token) to reconcile against.
    readback: ReadBackTarget | None = None
    memory: bool = False  # in-memory transport (tests, engine benchmarks)
    #: --verify: connections of the independent subscriber that checks delivery on the
    #: broker (0: no observer).
    verify: int = 0
    embedded_broker: str = "auto"
    per_gateway: bool | None = None  # None: per device, except on the embedded broker

    @property
    def embedded(self) -> bool:
        return self.mqtt is None and self.output is None and not self.memory and self.http is None


@dataclass(frozen=True)
class OutputConfig:
    """What the run writes and shows while it runs and at its end."""

    report: Path | None = None
    #: the self-contained HTML report.
    html: Path | None = None
    #: CSV files PREFIX_by_type.csv and PREFIX_timeseries.csv.
    csv: Path | None = None
    #: JSON-lines file the time-series rows go to as they are taken.
    timeseries: Path | None = None
    #: simulated seconds between time-series rows (None: about 300 rows over the run).
    snapshot_every: float | None = None
    #: host:port to serve Prometheus metrics on while the run lasts.
    prometheus: str | None = None
    live: bool = True
    #: stream every result as JSON lines on stdout (the Locust bridge reads them).
    stream_results: bool = False


@dataclass(frozen=True)
class VerdictConfig:
    """What the run must show to pass."""

    #: broken ones exit with EXIT_SLA.
    slas: tuple[Sla, ...] = ()
    #: JUnit XML of the SLA verdicts, one test case per SLA.
    junit: Path | None = None
    allow_loss: bool = False
    #: the share of sent messages that may fail (a share: 0.01 is 1 %); above it, exit 5.
    max_failed: float = 0.01


@dataclass(frozen=True)
class TraceConfig:
    """The backend's traces: where barnstorm receives them, what share of its requests it
    marks sampled, whether MQTT 5 publishes carry trace context, where its own spans go."""

    #: HOST:PORT of the OTLP/HTTP receiver (None: none).
    otlp_receiver: str | None = None
    #: the share of requests (and, with ``trace_mqtt``, of publishes) marked sampled.
    trace_sample: float = 0.0
    #: MQTT 5 publishes of the sampled share carry a ``traceparent`` user property.
    trace_mqtt: bool = False
    #: OTLP/HTTP URL barnstorm's own client spans go to (None: nowhere).
    otlp_export: str | None = None
    #: over MQTT 3.1.1 (no user properties), the payload field a sampled publish carries
    #: its traceparent in (None: nothing is added to payloads).
    trace_envelope: str | None = None


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs, validated (the CLI builds one from flags, env and files)."""

    fleet: FleetConfig = field(default_factory=FleetConfig)
    timing: TimingConfig = field(default_factory=TimingConfig)
    target: TargetConfig = field(default_factory=TargetConfig)
    outputs: OutputConfig = field(default_factory=OutputConfig)
    verdicts: VerdictConfig = field(default_factory=VerdictConfig)
    traces: TraceConfig = field(default_factory=TraceConfig)
    #: worker processes, each running a shard of the fleet (split by farm).
    processes: int = 1
    #: a shard of a parallel run: the parent reconciles against the read-back, so the
    #: shard keeps what it did not deliver for it.
    reconciled_by_parent: bool = False
    #: names this run in the trace context of its HTTP requests and in its report.
    run_id: str = field(default_factory=current_run_id)

    def secrets(self) -> list[str | None]:
        """Every secret this run was given (its outputs mask them)."""
        target = self.target
        return [
            target.token,
            target.mqtt.password if target.mqtt else None,
            target.readback.token if target.readback else None,
        ]

    def secret_urls(self) -> list[str | None]:
        """The URLs of this run, whose passwords and secret query values are secrets."""
        target = self.target
        return [
            target.http,
            target.mqtt.url if target.mqtt else None,
            target.readback.url if target.readback else None,
        ]

    def public(self) -> dict[str, Any]:
        """The configuration as shown in reports: one flat table, no secrets, plain JSON
        values."""
        data: dict[str, Any] = {"processes": self.processes, "run_id": self.run_id}
        for part in (
            self.fleet,
            self.timing,
            self.target,
            self.outputs,
            self.verdicts,
            self.traces,
        ):
            data.update(asdict(part))
        data.pop("modulators")
        data["scenario"] = self.timing.scenario.source if self.timing.scenario else None
        data["token"] = MASK if self.target.token else None
        data["http"] = redact_url(self.target.http) if self.target.http else None
        readback = self.target.readback
        data["readback"] = readback.shown if readback else None
        data["readback_token"] = MASK if readback and readback.token else None
        mqtt = self.target.mqtt
        if mqtt is not None:
            data["mqtt"] = {**asdict(mqtt), "password": MASK if mqtt.password else None}
        for key, value in data.items():
            if isinstance(value, Path):
                data[key] = str(value)
        for nested in ("mqtt", "tls"):
            if data[nested]:
                data[nested] = {
                    k: str(v) if isinstance(v, Path) else v for k, v in data[nested].items()
                }
        data["device_types"] = list(self.fleet.device_types) if self.fleet.device_types else None
        data["kinds"] = list(self.fleet.kinds) if self.fleet.kinds else None
        data["slas"] = [sla.text for sla in self.verdicts.slas]
        return data


@dataclass
class RunResult:
    report: dict[str, Any]
    exit_code: int
    transport: Transport | None = None
