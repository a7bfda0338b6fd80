"""Regressions against a baseline: tonight's run judged against yesterday's.

Both runs are reports barnstorm wrote: a mixed run's (``simulate mixed --report``: per
request name, dashboard requests and device messages) or a run's (``simulate run
--report``: per device type). Each becomes scopes (a request name, a device type) with
the same figures: ``p50`` ``p95`` ``p99`` (ms), ``error_rate``, ``rate`` (successful per
second), ``backend`` and ``db`` (ms, from the backend's Server-Timing), ``queries`` (per
request).

A rule has the SLA grammar with the baseline's value on the right::

    p95<=baseline*1.2+5ms      error_rate<=baseline+0.5%      "room chart".queries<=baseline

``baseline*F`` scales it, ``+N`` (``ms``, ``%`` or a plain number) adds a slack that keeps
a 2 ms endpoint from failing on 3 ms. A rule without a scope applies to every scope both
runs have; a scope with fewer than ``MIN_REQUESTS`` requests in either run is shown but
not judged (too little to tell).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from simulator.errors import ConfigError

METRICS = ("p50", "p95", "p99", "error_rate", "rate", "backend", "db", "queries")
UNITS = {"p50": "ms", "p95": "ms", "p99": "ms", "backend": "ms", "db": "ms"}
UNITS |= {"error_rate": "%", "rate": "/s", "queries": ""}
DEFAULT_RULES = (
    "p95<=baseline*1.2+5ms",
    "p99<=baseline*1.3+10ms",
    "error_rate<=baseline+0.5%",
    "queries<=baseline*1.2+1",
)
MIN_REQUESTS = 10
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_RULE = re.compile(
    r"""^\s*(?:(?P<scope>"[^"]+"|'[^']+'|[^"'<>=]+?)\.)?
    (?P<metric>p50|p95|p99|error_rate|rate|backend|db|queries)\s*
    (?P<op><=|>=|<|>)\s*baseline\s*
    (?:\*\s*(?P<factor>\d+(?:\.\d+)?))?\s*
    (?:(?P<sign>[+-])\s*(?P<slack>\d+(?:\.\d+)?)\s*(?P<unit>ms|%|/s)?)?\s*$""",
    re.VERBOSE,
)

Scopes = dict[str, dict[str, float | None]]


@dataclass(frozen=True)
class Rule:
    text: str
    scope: str | None
    metric: str
    op: str
    factor: float
    slack: float  # in the metric's unit: ms, a fraction for error_rate, /s, queries

    def limit(self, baseline: float) -> float:
        return baseline * self.factor + self.slack


def parse_rule(text: str, source: str = "--rule") -> Rule:
    match = _RULE.match(text)
    if not match:
        raise ConfigError(
            source,
            f'"{text}" is not a regression rule: expected [scope.]metric op baseline[*F][+N], '
            'e.g. "p95<=baseline*1.2+5ms", "error_rate<=baseline+0.5%", "queries<=baseline"',
        )
    metric = match["metric"]
    unit = match["unit"]
    expected = UNITS[metric]
    if unit and unit != expected:
        raise ConfigError(source, f'"{text}": {metric} takes {expected or "a plain number"}')
    slack = float(match["slack"] or 0.0) * (-1.0 if match["sign"] == "-" else 1.0)
    if metric == "error_rate":
        slack /= 100.0 if unit == "%" else 1.0
    scope = match["scope"]
    if scope:
        scope = scope.strip().strip("\"'")
    return Rule(text, scope, metric, match["op"], float(match["factor"] or 1.0), slack)


def parse_rules(texts: Iterable[str], source: str = "--rule") -> tuple[Rule, ...]:
    return tuple(parse_rule(text, source) for text in texts)


def scopes(report: dict[str, Any], source: str) -> Scopes:
    """A report's figures per scope: a mixed run's request names, a run's device types."""
    if report.get("kind") == "mixed":
        out: Scopes = {}
        for r in report.get("requests") or []:
            backend = r.get("backend") or {}
            ms = backend.get("ms") or {}
            out[r["name"]] = {
                "requests": r["requests"],
                "p50": r["p50_ms"],
                "p95": r["p95_ms"],
                "p99": r["p99_ms"],
                "error_rate": r.get(
                    "error_rate", r["failures"] / r["requests"] if r["requests"] else 0.0
                ),
                "rate": r["rate_per_s"],
                "backend": ms.get("total"),
                "db": ms.get("db"),
                "queries": backend.get("queries_per_request"),
            }
        return out
    if "by_device_type" in report and "totals" in report:
        out = {}
        for name, counts in report["by_device_type"].items():
            sent = counts.get("sent", 0)
            latency = counts.get("latency_ms") or {}
            backend = counts.get("backend") or {}
            out[name] = {
                "requests": sent,
                "p50": latency.get("p50"),
                "p95": latency.get("p95"),
                "p99": latency.get("p99"),
                "error_rate": (counts.get("failed", 0) + counts.get("dropped", 0)) / sent
                if sent
                else 0.0,
                "rate": counts.get("rate_per_s"),
                "backend": (backend.get("ms") or {}).get("total"),
                "db": (backend.get("ms") or {}).get("db"),
                "queries": backend.get("queries_per_request"),
            }
        return out
    raise ConfigError(
        source, "not a barnstorm report (expected simulate run --report or simulate mixed --report)"
    )


@dataclass(frozen=True)
class Judgement:
    rule: str
    scope: str
    metric: str
    baseline: float
    current: float
    limit: float
    held: bool

    def detail(self) -> str:
        word = "held" if self.held else "BROKEN"

        def show(value: float) -> str:
            return figure(self.metric, value, with_unit=True)

        return (
            f"{word} {self.scope}: {self.metric} {show(self.current)} against "
            f"{show(self.baseline)} (limit {show(self.limit)}, {self.rule})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "scope": self.scope,
            "metric": self.metric,
            "baseline": self.baseline,
            "current": self.current,
            "limit": self.limit,
            "held": self.held,
            "detail": self.detail(),
        }


@dataclass(frozen=True)
class Comparison:
    baseline: Scopes
    current: Scopes
    judgements: list[Judgement]
    #: scopes not judged, and why.
    skipped: dict[str, str]

    @property
    def regressed(self) -> bool:
        return any(not j.held for j in self.judgements)

    def as_dict(self) -> dict[str, Any]:
        return {
            "regressed": self.regressed,
            "scopes": {
                name: {"baseline": self.baseline.get(name), "current": self.current.get(name)}
                for name in sorted(set(self.baseline) | set(self.current))
            },
            "judgements": [j.as_dict() for j in self.judgements],
            "skipped": self.skipped,
        }


def compare(baseline: Scopes, current: Scopes, rules: Iterable[Rule]) -> Comparison:
    """Judge every rule on every scope it names (or every scope both runs have)."""
    judgements: list[Judgement] = []
    skipped: dict[str, str] = {}
    both = [name for name in current if name in baseline]
    for name in sorted(set(baseline) ^ set(current)):
        skipped[name] = "only in the baseline" if name in baseline else "only in this run"
    for name in both:
        low = min(baseline[name].get("requests") or 0, current[name].get("requests") or 0)
        if low < MIN_REQUESTS:
            skipped[name] = f"{low:,.0f} requests: too few to judge"
    rules = list(rules)
    for rule in rules:
        if rule.scope is not None and rule.scope not in both:
            raise ConfigError(
                "--rule",
                f'"{rule.text}": no scope "{rule.scope}" in both runs '
                f"(scopes: {', '.join(sorted(both)) or 'none'})",
            )
    for name in both:
        if name in skipped:
            continue
        for rule in rules:
            if rule.scope is not None and rule.scope != name:
                continue
            before, now = baseline[name].get(rule.metric), current[name].get(rule.metric)
            if before is None or now is None or not (math.isfinite(before) and math.isfinite(now)):
                continue  # the figure is not in both runs (no Server-Timing, say)
            limit = rule.limit(before)
            judgements.append(
                Judgement(
                    rule.text, name, rule.metric, before, now, limit, _OPS[rule.op](now, limit)
                )
            )
    return Comparison(baseline, current, judgements, skipped)


def figure(metric: str, value: float | None, *, with_unit: bool = False) -> str:
    """A value of ``metric`` as text: error rates in percent, others with one decimal
    (and their unit, ``with_unit``); ``–`` for none."""
    if value is None:
        return "–"
    unit = UNITS[metric]
    if unit == "%":
        return f"{value * 100:.2f} %"
    return f"{value:,.1f}" + (f" {unit}" if with_unit and unit else "")


def change(metric: str, before: float | None, now: float | None) -> str:
    """``+12 %`` (``+0.4 pp`` for error rates), or ``–`` when one side has no figure."""
    if before is None or now is None:
        return "–"
    if metric == "error_rate":
        return f"{(now - before) * 100:+.2f} pp"
    if before == 0:
        return "–" if now == 0 else "new"
    ratio = now / before
    return f"×{ratio:,.0f}" if ratio >= 10 else f"{(ratio - 1.0) * 100:+.0f} %"
