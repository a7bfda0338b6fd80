"""SLAs: what a run must show to pass, verdicts per SLA, and JUnit XML for CI pipelines.

An SLA is ``[scope.]metric op value``::

    ingest.p95<250ms        dashboard.error_rate<1%        loss==0
    cough_monitor.p99<=1s   ingest.rate>=2000/s            "GET /api/farms".p50<100ms

- **scope**: ``ingest`` (every device message), ``dashboard`` (every dashboard request, in
  mixed runs), a device type (``cough_monitor``), or a request name as Locust shows it
  (``"GET /api/farms/[farm_id]"``, quoted when it has dots or spaces). No scope: ``ingest``.
- **metric**: ``p50`` ``p90`` ``p95`` ``p99`` ``p99.9`` (any percentile), ``max``,
  ``mean`` (latency: ``ms`` or ``s``); ``error_rate`` (failed share: ``%`` or a fraction);
  ``rate`` (successful per second: ``/s``); ``loss`` and ``errors`` (counts). ``loss`` is
  the messages the target never got: the read-back's count when there is one, otherwise
  the failed, dropped and in-flight-at-stop messages.
- **op**: ``<`` ``<=`` ``>`` ``>=`` ``==`` ``!=``.

A scope with no data breaks its SLA (nothing was shown to hold). The verdicts go into
the report, the summary and ``--junit FILE.xml`` (one test case per SLA); the run exits
with ``EXIT_SLA`` (3) when any breaks.
"""

from __future__ import annotations

import operator
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.errors import ConfigError
from simulator.redact import write_private

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_PATTERN = re.compile(
    r"""^\s*(?:(?P<scope>"[^"]+"|'[^']+'|[^"'<>=!]+?)\.)?
    (?P<metric>p\d+(?:\.\d+)?|max|mean|error_rate|rate|loss|errors)\s*
    (?P<op><=|>=|==|!=|<|>)\s*(?P<value>[^<>=!]+?)\s*$""",
    re.VERBOSE,
)
_LATENCY = re.compile(r"^(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>ms|s)$")
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")


@dataclass(frozen=True)
class Sla:
    text: str
    scope: str
    metric: str
    op: str
    threshold: float  # ms for latency, a fraction for error_rate, per second for rate
    unit: str

    def describe(self, value: float) -> str:
        """A value of this SLA's metric in its unit: ``312 ms``, ``48.5 ms``, ``1.2 %``,
        ``2,400/s``."""
        if self.unit == "ms":
            return f"{value:,.0f} ms" if value >= 100 else f"{value:,.1f} ms"
        if self.unit == "%":
            return f"{value * 100:.2f} %"
        if self.unit == "/s":
            return f"{value:,.1f}/s"
        return f"{value:,.0f}"


def parse_sla(text: str, source: str = "--sla") -> Sla:
    """Parse one SLA; errors name ``source`` and say what was expected."""
    match = _PATTERN.match(text)
    if not match:
        raise ConfigError(
            source,
            f'"{text}" is not an SLA: expected [scope.]metric op value, e.g. "ingest.p95<250ms", '
            '"dashboard.error_rate<1%", "loss==0", "ingest.rate>=2000/s"',
        )
    scope = (match["scope"] or "ingest").strip().strip("\"'")
    metric, op, raw = match["metric"], match["op"], match["value"].strip()
    if metric.startswith("p") or metric in ("max", "mean"):
        if metric.startswith("p") and not 0 < float(metric[1:]) < 100:
            raise ConfigError(source, f'"{text}": a percentile is between p0 and p100')
        latency = _LATENCY.match(raw)
        if not latency:
            raise ConfigError(source, f'"{text}": expected a latency such as 250ms or 1.5s')
        millis = float(latency["number"]) * (1000.0 if latency["unit"] == "s" else 1.0)
        return Sla(text, scope, metric, op, millis, "ms")
    if metric == "error_rate":
        if raw.endswith("%") and _NUMBER.match(raw[:-1].strip()):
            return Sla(text, scope, metric, op, float(raw[:-1]) / 100.0, "%")
        if _NUMBER.match(raw) and float(raw) <= 1:
            return Sla(text, scope, metric, op, float(raw), "%")
        raise ConfigError(source, f'"{text}": expected a share such as 1% or 0.01')
    if metric == "rate":
        per_second = raw[:-2].strip() if raw.endswith("/s") else raw
        if not _NUMBER.match(per_second):
            raise ConfigError(source, f'"{text}": expected a rate such as 2000/s')
        return Sla(text, scope, metric, op, float(per_second), "/s")
    if not _NUMBER.match(raw):
        raise ConfigError(source, f'"{text}": expected a count such as 0')
    return Sla(text, scope, metric, op, float(raw), "")


def parse_slas(texts: Iterable[str], source: str = "--sla") -> tuple[Sla, ...]:
    return tuple(parse_sla(text, source) for text in texts)


@dataclass
class Measure:
    """What one scope showed in the window an SLA is judged on."""

    count: int  # requests or messages that ended, in success or failure
    failures: int
    seconds: float
    lost: int
    quantile: Callable[[float], float]  # a share (0–1) -> latency in ms
    max_ms: float
    mean_ms: float

    def value(self, sla: Sla) -> float:
        metric = sla.metric
        if metric.startswith("p"):
            return self.quantile(float(metric[1:]) / 100.0)
        if metric == "max":
            return self.max_ms
        if metric == "mean":
            return self.mean_ms
        if metric == "error_rate":
            return self.failures / self.count if self.count else 0.0
        if metric == "rate":
            return (self.count - self.failures) / self.seconds if self.seconds > 0 else 0.0
        if metric == "loss":
            return float(self.lost)
        return float(self.failures)


@dataclass(frozen=True)
class Verdict:
    sla: Sla
    held: bool
    actual: float | None  # None: the scope had no data

    @property
    def detail(self) -> str:
        sla = self.sla
        limit = f"{sla.op} {sla.describe(sla.threshold)}"
        if self.actual is None:
            return f"{sla.text}: no {sla.scope} data in the run (expected {limit})"
        word = "held" if self.held else "BROKEN"
        actual = sla.describe(self.actual)
        return f"{sla.text}: {word}, {sla.scope} {sla.metric} {actual}, limit {limit}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "sla": self.sla.text,
            "scope": self.sla.scope,
            "metric": self.sla.metric,
            "op": self.sla.op,
            "threshold": self.sla.threshold,
            "unit": self.sla.unit,
            "actual": None if self.actual is None else round(self.actual, 6),
            "held": self.held,
            "detail": self.detail,
        }


def evaluate(slas: Iterable[Sla], measures: dict[str, Measure]) -> list[Verdict]:
    """A verdict per SLA against the measures of each scope."""
    verdicts = []
    for sla in slas:
        measure = measures.get(sla.scope)
        if measure is None or measure.count == 0:
            verdicts.append(Verdict(sla, False, None))
            continue
        actual = measure.value(sla)
        verdicts.append(Verdict(sla, _OPS[sla.op](actual, sla.threshold), actual))
    return verdicts


def write_junit(verdicts: list[Verdict], path: Path, seconds: float, suite: str) -> None:
    """One JUnit test case per SLA; a broken SLA is a failure saying which value broke it."""
    failures = sum(1 for v in verdicts if not v.held)
    root = ElementTree.Element(
        "testsuite",
        name=suite,
        tests=str(len(verdicts)),
        failures=str(failures),
        errors="0",
        time=f"{seconds:.3f}",
    )
    for verdict in verdicts:
        case = ElementTree.SubElement(
            root, "testcase", classname=f"barnstorm.sla.{verdict.sla.scope}", name=verdict.sla.text
        )
        if not verdict.held:
            failure = ElementTree.SubElement(case, "failure", message=verdict.detail, type="SLA")
            failure.text = verdict.detail
        else:
            ElementTree.SubElement(case, "system-out").text = verdict.detail
    xml = ElementTree.tostring(root, encoding="unicode", xml_declaration=True)
    write_private(path, xml + "\n", "--junit")


def metrics_measures(
    type_counts: dict[str, Any], total: Any, seconds: float, accounted_loss: int | None
) -> dict[str, Measure]:
    """Measures of a standalone run from its metrics: ``ingest`` and each device type."""

    def measure(counts: Any, lost: int | None = None) -> Measure:
        histogram = counts.latency
        failures = counts.failed + counts.dropped
        return Measure(
            count=counts.settled + counts.in_flight,
            failures=failures + counts.in_flight,
            seconds=seconds,
            lost=lost if lost is not None else failures + counts.in_flight,
            quantile=lambda q: histogram.percentile(q) * 1000.0,
            max_ms=histogram.max * 1000.0,
            mean_ms=histogram.total_seconds / histogram.total * 1000.0 if histogram.total else 0.0,
        )

    measures = {name: measure(counts) for name, counts in type_counts.items()}
    measures["ingest"] = measure(total, accounted_loss)
    return measures


def report_measures(report: dict[str, Any]) -> dict[str, Measure]:
    """Measures from a finished report (a merged multi-process run): the percentiles the
    report keeps (p50, p95, p99) and the counts."""
    seconds = float(report["time"]["wall_seconds"])
    accounting = report.get("accounting")

    def measure(counts: dict[str, Any], lost: int | None = None) -> Measure:
        latency = counts["latency_ms"]
        failures = counts["failed"] + counts["dropped"] + counts["in_flight"]
        kept = {0.5: latency["p50"], 0.95: latency["p95"], 0.99: latency["p99"]}

        def quantile(q: float) -> float:
            if q not in kept:
                raise ConfigError("--sla", "a multi-process run keeps only p50, p95 and p99")
            return float(kept[q])

        return Measure(
            count=counts["sent"],
            failures=failures,
            seconds=seconds,
            lost=lost if lost is not None else failures,
            quantile=quantile,
            max_ms=latency["max"],
            mean_ms=latency["mean"],
        )

    measures = {name: measure(counts) for name, counts in report["by_device_type"].items()}
    measures["ingest"] = measure(report["totals"], accounting["lost"] if accounting else None)
    return measures
