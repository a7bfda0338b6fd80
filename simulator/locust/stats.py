"""SLA measures from Locust's statistics, for mixed runs and capacity steps.

Locust's request entries (dashboard requests, and the device results the bridge turns
into request events: method ``MQTT``/``HTTP``/``FILE``, name ``publish <type>`` or
``ingest <type>``) become the scopes an SLA names: ``ingest``, ``dashboard``, each device
type and each request name. A :class:`Snapshot` of the entries at two instants gives the
measures of the window between them (a capacity step without its warm-up).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from locust.stats import calculate_response_time_percentile

from simulator.metrics.sla import Measure

DEVICE_METHODS = {"MQTT", "HTTP", "FILE", "MEMORY"}


@dataclass
class EntryCounts:
    requests: int = 0
    failures: int = 0
    total_ms: float = 0.0
    times: Counter[int] = field(default_factory=Counter)

    def minus(self, other: EntryCounts) -> EntryCounts:
        times = Counter(self.times)
        times.subtract(other.times)
        return EntryCounts(
            self.requests - other.requests,
            self.failures - other.failures,
            self.total_ms - other.total_ms,
            Counter({k: v for k, v in times.items() if v > 0}),
        )

    def add(self, other: EntryCounts) -> None:
        self.requests += other.requests
        self.failures += other.failures
        self.total_ms += other.total_ms
        self.times.update(other.times)


Snapshot = dict[tuple[str, str], EntryCounts]


def snapshot(stats: Any) -> Snapshot:
    """The counts of every request entry of a Locust ``RequestStats`` now."""
    return {
        (entry.method, entry.name): EntryCounts(
            entry.num_requests,
            entry.num_failures,
            float(entry.total_response_time),
            Counter(entry.response_times),
        )
        for entry in stats.entries.values()
    }


def scopes_of(method: str, name: str) -> list[str]:
    """The SLA scopes a request entry counts towards."""
    if method in DEVICE_METHODS:
        device_type = name.split(" ", 1)[-1]
        return ["ingest", device_type, name]
    return ["dashboard", name]


def window_measures(before: Snapshot, after: Snapshot, seconds: float) -> dict[str, Measure]:
    """Measures per scope of what happened between two snapshots."""
    grouped: dict[str, EntryCounts] = {}
    for key, counts in after.items():
        delta = counts.minus(before.get(key, EntryCounts()))
        for scope in scopes_of(*key):
            grouped.setdefault(scope, EntryCounts()).add(delta)
    return {scope: _measure(counts, seconds) for scope, counts in grouped.items()}


def _measure(counts: EntryCounts, seconds: float) -> Measure:
    timed = sum(counts.times.values())
    times = dict(counts.times)

    def quantile(q: float) -> float:
        return float(calculate_response_time_percentile(times, timed, q)) if timed else 0.0

    return Measure(
        count=counts.requests,
        failures=counts.failures,
        seconds=seconds,
        lost=counts.failures,
        quantile=quantile,
        max_ms=float(max(counts.times)) if counts.times else 0.0,
        mean_ms=counts.total_ms / counts.requests if counts.requests else 0.0,
    )
