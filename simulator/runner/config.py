"""What a run needs, validated once and frozen, and what it returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from simulator.engine.scenarios import Scenario
from simulator.fleet.build import DEFAULT_SEED
from simulator.fleet.topics import DEFAULT_TOPIC_TEMPLATE
from simulator.metrics.sla import (
    Sla,
)
from simulator.models.base import Modulator
from simulator.trace import current_run_id
from simulator.transports.base import Transport
from simulator.transports.mqtt.settings import MqttSettings
from simulator.transports.tls import TlsFiles


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
