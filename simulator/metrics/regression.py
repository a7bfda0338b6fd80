"""Regressions against a baseline: tonight's run judged against the last nights'.

The runs are reports barnstorm wrote: a mixed run's (``simulate mixed --report``: per
request name, dashboard requests and device messages) or a run's (``simulate run
--report``: per device type). Each becomes scopes (a request name, a device type) with
the same figures: ``p50`` ``p95`` ``p99`` (ms, and the histogram behind them),
``error_rate`` (and the counts behind it), ``statuses`` (answers per status code),
``rate`` (successful per second), ``backend`` and ``db`` (ms, from the backend's
Server-Timing), ``queries`` and ``bytes`` (per request), ``db_spans`` (database spans per
request in the backend's own traces, ``--otlp-receiver``).

A rule has the SLA grammar with the baseline's value on the right::

    p95<=baseline*1.2+5ms      error_rate<=baseline+0.5%      "room chart".queries<=baseline

``baseline*F`` scales it, ``+N`` (``ms``, ``%`` or a plain number) adds a slack that keeps
a 2 ms endpoint from failing on 3 ms. A rule without a scope applies to every scope the
runs share. How each measure is judged, how sure it must be and in what order broken
rules are told is :mod:`simulator.metrics.gate`'s.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from simulator.errors import ConfigError
from simulator.metrics.gate import FAMILY_ALPHA, KINDS, Judge, Unjudged, Verdict, tests_in
from simulator.redact import write_private

METRICS = (
    "p50",
    "p95",
    "p99",
    "error_rate",
    "statuses",
    "rate",
    "backend",
    "db",
    "queries",
    "db_spans",
    "bytes",
)
UNITS = {"p50": "ms", "p95": "ms", "p99": "ms", "backend": "ms", "db": "ms"}
UNITS |= {"error_rate": "%", "statuses": "%", "rate": "/s", "queries": "", "bytes": "B"}
UNITS |= {"db_spans": ""}
DEFAULT_RULES = (
    "queries<=baseline*1.2+1",
    "db_spans<=baseline*1.2+1",
    "bytes<=baseline*1.5+1024",
    "statuses<=baseline+5%",
    "error_rate<=baseline+0.5%",
    "p50<=baseline*1.2+5ms",
    "p95<=baseline*1.2+5ms",
    "p99<=baseline*1.3+10ms",
)
#: the share of this run's scopes a baseline must have too, or the comparison is refused
#: (reports of other endpoints, or renamed ones, would judge nothing and pass).
MIN_OVERLAP = 0.5
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_RULE = re.compile(
    r"""^\s*(?:(?P<scope>"[^"]+"|'[^']+'|[^"'<>=]+?)\.)?
    (?P<metric>p50|p95|p99|error_rate|statuses|rate|backend|db_spans|db|queries|bytes)\s*
    (?P<op><=|>=|<|>)\s*baseline\s*
    (?:\*\s*(?P<factor>\d+(?:\.\d+)?))?\s*
    (?:(?P<sign>[+-])\s*(?P<slack>\d+(?:\.\d+)?)\s*(?P<unit>ms|%|/s)?)?\s*$""",
    re.VERBOSE,
)

Scopes = dict[str, dict[str, Any]]


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

    def holds(self, value: float, limit: float) -> bool:
        return _OPS[self.op](value, limit)


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
    if metric in ("error_rate", "statuses"):
        slack /= 100.0 if unit == "%" else 1.0
    scope = match["scope"]
    if scope:
        scope = scope.strip().strip("\"'")
    return Rule(text, scope, metric, match["op"], float(match["factor"] or 1.0), slack)


def parse_rules(texts: Iterable[str], source: str = "--rule") -> tuple[Rule, ...]:
    return tuple(parse_rule(text, source) for text in texts)


#: a comment: ``#`` at the start or after a space, outside a quoted scope.
_COMMENT = re.compile(r"""^((?:[^"'#]|"[^"]*"|'[^']*')*?)(?:(?:^|\s)#.*)?$""")


def read_rules_file(path: Path, source: str = "--rules-file") -> tuple[str, ...]:
    """The rules of a file, one a line; blank lines and comments (``#`` at the start or after
    a space) are skipped. A bad
    rule is named by file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, f"cannot read {path}: {exc}") from None
    rules: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        rule = _COMMENT.sub(r"\1", line).strip()
        if rule:
            parse_rule(rule, f"{path}:{number}")
            rules.append(rule)
    if not rules:
        raise ConfigError(source, f"{path} holds no rule (one a line, e.g. queries<=baseline)")
    return tuple(rules)


def scopes(report: dict[str, Any], source: str) -> Scopes:
    """A report's figures per scope: a mixed run's request names, a run's device types."""
    if report.get("kind") == "mixed":
        return {r["name"]: _request_scope(r) for r in report.get("requests") or []}
    if "by_device_type" in report and "totals" in report:
        found = {name: _type_scope(counts) for name, counts in report["by_device_type"].items()}
        for flow in (report.get("traces") or {}).get("flows") or []:
            scope = found.get(str(flow.get("name", "")).split(" ", 1)[-1])
            if scope is not None and flow.get("flow") in ("ingest", "publish"):
                scope["db_spans"] = flow.get("db_spans_per_request")
                scope["db_spans_requests"] = flow.get("traces")
        return found
    raise ConfigError(
        source, "not a barnstorm report (expected simulate run --report or simulate mixed --report)"
    )


def report_kind(report: dict[str, Any]) -> str:
    return "mixed" if report.get("kind") == "mixed" else "run"


def _histogram(pairs: Any) -> list[tuple[float, int]] | None:
    if not isinstance(pairs, dict | list):
        return None
    items = pairs.items() if isinstance(pairs, dict) else pairs
    return sorted((float(value), int(count)) for value, count in items if int(count) > 0)


def _request_scope(r: dict[str, Any]) -> dict[str, Any]:
    backend = r.get("backend") or {}
    ms = backend.get("ms") or {}
    return {
        "requests": r["requests"],
        "failures": r.get("failures", 0),
        "p50": r["p50_ms"],
        "p95": r["p95_ms"],
        "p99": r["p99_ms"],
        "histogram": _histogram(r.get("response_times")),
        "error_rate": r.get("error_rate", r["failures"] / r["requests"] if r["requests"] else 0.0),
        "statuses": r.get("statuses"),
        "rate": r["rate_per_s"],
        "backend": ms.get("total"),
        "db": ms.get("db"),
        "queries": backend.get("queries_per_request"),
        "queries_requests": backend.get("responses"),
        "db_spans": (r.get("traces") or {}).get("db_spans_per_request"),
        "db_spans_requests": (r.get("traces") or {}).get("traces"),
        "bytes": r.get("bytes_per_response"),
        "errors": r.get("errors") or {},
    }


def _type_scope(counts: dict[str, Any]) -> dict[str, Any]:
    sent = counts.get("sent", 0)
    latency = counts.get("latency_ms") or {}
    backend = counts.get("backend") or {}
    failed = counts.get("failed", 0) + counts.get("dropped", 0)
    return {
        "requests": sent,
        "failures": failed,
        "p50": latency.get("p50"),
        "p95": latency.get("p95"),
        "p99": latency.get("p99"),
        "histogram": _histogram(counts.get("latency_histogram")),
        "error_rate": failed / sent if sent else 0.0,
        "statuses": None,
        "rate": counts.get("rate_per_s"),
        "backend": (backend.get("ms") or {}).get("total"),
        "db": (backend.get("ms") or {}).get("db"),
        "queries": backend.get("queries_per_request"),
        "queries_requests": backend.get("responses"),
        "bytes": counts["bytes"] / sent if sent and "bytes" in counts else None,
        "errors": counts.get("errors") or {},
    }


class Mismatch(ConfigError):
    """Reports that cannot be judged against each other (other kinds, other endpoints)."""


@dataclass(frozen=True)
class Comparison:
    """This run against its baselines: the verdicts, ranked, and what could not be judged."""

    baselines: list[Scopes]
    current: Scopes
    verdicts: list[Verdict]
    unjudged: list[Unjudged]
    #: scopes in this run only, and in the baselines only.
    only_now: list[str]
    only_before: list[str]
    #: why the reports do not match, when the user let the comparison go on anyway.
    mismatch: str | None = None

    @property
    def baseline(self) -> Scopes:
        """The last baseline's scopes (the one shown beside this run)."""
        return self.baselines[-1]

    @property
    def regressed(self) -> bool:
        return any(not v.held for v in self.verdicts)

    @property
    def broken(self) -> list[Verdict]:
        """Broken rules, the likely cause first, then the surest and largest."""
        return sorted((v for v in self.verdicts if not v.held), key=lambda v: v.rank)

    @property
    def improved(self) -> list[Verdict]:
        """Held rules whose measure went down by more than their slack: a fix to tell."""
        return [
            v
            for v in self.verdicts
            if v.held and v.baseline > 0 and v.current < v.baseline - abs(v.limit - v.baseline)
        ]

    def summaries(self) -> list[str]:
        """A line per scope with a broken rule, in the order of its worst one."""
        lines: dict[str, list[str]] = {}
        for verdict in self.broken:
            lines.setdefault(verdict.scope, []).append(describe(verdict))
        return [f"{scope}: {'; '.join(parts)}" for scope, parts in lines.items()]

    def as_dict(self) -> dict[str, Any]:
        shown = ("requests", "failures", *METRICS)
        return {
            "regressed": self.regressed,
            "baselines": len(self.baselines),
            "mismatch": self.mismatch,
            "summary": self.summaries(),
            "broken": [_verdict_dict(v) for v in self.broken],
            "held": [_verdict_dict(v) for v in self.verdicts if v.held],
            "not_judged": [
                {"scope": u.scope, "metric": u.metric, "why": u.reason} for u in self.unjudged
            ],
            "only_in_this_run": self.only_now,
            "only_in_the_baselines": self.only_before,
            "scopes": {
                name: {
                    "baseline": _shown(self.baseline.get(name), shown),
                    "current": _shown(self.current.get(name), shown),
                }
                for name in sorted(set(self.baseline) | set(self.current))
            },
        }


def _shown(scope: dict[str, Any] | None, keys: tuple[str, ...]) -> dict[str, Any] | None:
    return None if scope is None else {k: scope.get(k) for k in keys}


def _verdict_dict(verdict: Verdict) -> dict[str, Any]:
    return {
        "rule": verdict.rule,
        "scope": verdict.scope,
        "metric": verdict.metric,
        "status": verdict.status,
        "baseline": verdict.baseline,
        "current": verdict.current,
        "limit": verdict.limit,
        "held": verdict.held,
        "evidence": verdict.evidence,
        "detail": describe(verdict),
    }


def describe(verdict: Verdict) -> str:
    """``queries 1 → 2,716 (×2,716), limit 2.2``: what changed, for a human."""
    metric = verdict.metric if verdict.status is None else f"status {verdict.status}"
    before = figure(verdict.metric, verdict.baseline, with_unit=True)
    now = figure(verdict.metric, verdict.current, with_unit=True)
    limit = figure(verdict.metric, verdict.limit, with_unit=True)
    moved = change(verdict.metric, verdict.baseline, verdict.current)
    return f"{metric} {before} → {now} ({moved}), limit {limit}"


def check_match(
    baselines: list[tuple[str, dict[str, Any]]], current: tuple[str, dict[str, Any]]
) -> str | None:
    """Why the reports cannot be judged against each other, or None: other kinds of
    report, or this run's scopes hardly in the baselines (endpoints renamed, another
    map)."""
    name, report = current
    kinds = {report_kind(b) for _, b in baselines}
    if kinds != {report_kind(report)}:
        first = next(b for b in baselines if report_kind(b[1]) != report_kind(report))
        return (
            f"{name} is a {report_kind(report)} report and {first[0]} a "
            f"{report_kind(first[1])} report: they share no endpoint to judge"
        )
    now = scopes(report, name)
    for source, baseline in baselines:
        shared = set(now) & set(scopes(baseline, source))
        if now and len(shared) < MIN_OVERLAP * len(now):
            missing = sorted(set(now) - shared)
            return (
                f"{len(shared)} of this run's {len(now)} endpoints are in {source} (at least "
                f"{MIN_OVERLAP:.0%} must be); not there: {', '.join(missing[:4])}"
                + (" ..." if len(missing) > 4 else "")
            )
    return None


def compare(
    baselines: Scopes | list[Scopes],
    current: Scopes,
    rules: Iterable[Rule],
    mismatch: str | None = None,
) -> Comparison:
    """Judge every rule on every scope it names (or every scope all runs share)."""
    before = baselines if isinstance(baselines, list) else [baselines]
    shared = [name for name in current if all(name in b for b in before)]
    rules = list(rules)
    for rule in rules:
        if rule.scope is not None and rule.scope not in shared:
            raise ConfigError(
                "--rule",
                f'"{rule.text}": no scope "{rule.scope}" in every run '
                f"(scopes: {', '.join(sorted(shared)) or 'none'})",
            )
    judged = [r for r in rules if r.scope is None] or rules
    tests = tests_in([r.metric for r in judged], len(shared)) + sum(
        1 for r in rules if r.scope is not None
    )
    judge = Judge(alpha=FAMILY_ALPHA / tests)
    for name in shared:
        history = [b[name] for b in before]
        for rule in rules:
            if rule.scope is not None and rule.scope != name:
                continue
            kind = KINDS[rule.metric][0]
            if rule.metric == "statuses":
                judge.statuses(rule, name, history, current[name])
            elif kind == "percentile":
                judge.percentile(rule, name, history, current[name])
            elif kind == "counts":
                judge.rate(rule, name, history, current[name])
            elif kind == "deterministic":
                judge.deterministic(rule, name, history, current[name])
            else:
                judge.mean(rule, name, history, current[name])
    known = set().union(*before)
    return Comparison(
        before,
        current,
        judge.verdicts,
        judge.unjudged,
        sorted(set(current) - known),
        sorted(known - set(current)),
        mismatch,
    )


def figure(metric: str, value: float | None, *, with_unit: bool = False) -> str:
    """A value of ``metric`` as text: rates in percent, bytes whole, others with one
    decimal (and their unit, ``with_unit``); ``–`` for none."""
    if value is None:
        return "–"
    unit = UNITS[metric]
    if unit == "%":
        return f"{value * 100:.2f} %"
    if unit == "B":
        return f"{value:,.0f}" + (" B" if with_unit else "")
    text = f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"
    return text + (f" {unit}" if with_unit and unit else "")


def change(metric: str, before: float | None, now: float | None) -> str:
    """``+12 %`` (``+0.4 pp`` for rates), or ``–`` when one side has no figure."""
    if before is None or now is None:
        return "–"
    if UNITS[metric] == "%":
        return f"{(now - before) * 100:+.2f} pp"
    if before == 0:
        return "–" if now == 0 else "new"
    ratio = now / before
    return f"×{ratio:,.0f}" if ratio >= 10 else f"{(ratio - 1.0) * 100:+.0f} %"


def write_comparison_junit(result: Comparison, path: Path) -> None:
    """The comparison as JUnit XML for a CI's test view: one test case per rule judged on an
    endpoint (a broken rule a failure with what changed and how sure), one skipped case per
    measure that could not be judged, with what it would need."""
    verdicts = sorted(result.verdicts, key=lambda v: (v.held, v.rank))
    root = ElementTree.Element(
        "testsuite",
        name="barnstorm regression gate",
        tests=str(len(verdicts) + len(result.unjudged)),
        failures=str(len(result.broken)),
        errors="0",
        skipped=str(len(result.unjudged)),
    )
    for verdict in verdicts:
        case = ElementTree.SubElement(
            root, "testcase", classname=f"barnstorm.compare.{verdict.scope}", name=verdict.rule
        )
        text = f"{describe(verdict)}\n{verdict.evidence}"
        if verdict.held:
            ElementTree.SubElement(case, "system-out").text = text
        else:
            failure = ElementTree.SubElement(
                case, "failure", message=describe(verdict), type="regression"
            )
            failure.text = text
    for unjudged in result.unjudged:
        case = ElementTree.SubElement(
            root, "testcase", classname=f"barnstorm.compare.{unjudged.scope}", name=unjudged.metric
        )
        ElementTree.SubElement(case, "skipped", message=unjudged.reason)
    xml = ElementTree.tostring(root, encoding="unicode", xml_declaration=True)
    write_private(path, xml + "\n", "--junit")
