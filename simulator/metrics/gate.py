"""The regression gate's judgement: each rule judged on each scope by a method that fits its
measure, against one baseline or several, and the broken ones ranked.

- **Percentiles** (p50, p95, p99) are judged from the runs' histograms: a rule breaks only
  when this run's percentile stays above the limit of the baselines' in all but the worst
  share of bootstrap replicates of both (:func:`~simulator.metrics.evidence.quantile_excess`;
  several baselines pooled, their own spread widening the limit). Too few requests
  above the percentile: not judged, and how many it would need is said.
- **Failure rates and status mix** are counts: an exact binomial test asks whether this
  run's failures (or answers of one status) could have come from a rate at the limit.
- **Queries, bytes per response** are deterministic per request: two requests decide
  them, against the largest any baseline showed.
- **Means** (backend and db time, throughput) are compared as points, with at least
  ``MIN_REQUESTS`` on both sides.

Every test runs at a share of one family-wise error rate (``FAMILY_ALPHA``, Bonferroni):
the more rules and scopes a comparison judges, the surer each must be. Broken rules rank
by kind first (what a backend does per request, queries, bytes and statuses, comes before
the latency it causes), then by how far past the limit.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any

from simulator.metrics.evidence import (
    Histogram,
    excess_p_value,
    failures_needed,
    point,
    quantile_excess,
    requests_needed,
    requests_to_judge_rate,
    total,
)

#: the chance that a comparison of two runs of one build shows any broken rule at all.
FAMILY_ALPHA = 0.05
#: requests on both sides before a mean (backend time, throughput) is compared.
MIN_REQUESTS = 10
#: requests on both sides before a deterministic measure (queries, bytes) is judged.
MIN_DETERMINISTIC = 2
PERCENTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
#: how a metric is judged, and its rank among causes (lower ranks first).
KINDS = {
    "queries": ("deterministic", 0),
    "db_spans": ("deterministic", 0),
    "bytes": ("deterministic", 0),
    "statuses": ("counts", 0),
    "error_rate": ("counts", 1),
    "p50": ("percentile", 2),
    "p95": ("percentile", 2),
    "p99": ("percentile", 2),
    "backend": ("mean", 2),
    "db": ("mean", 2),
    "rate": ("mean", 3),
}


@dataclass(frozen=True)
class Verdict:
    """One rule on one scope: the values compared, the limit, and how sure."""

    rule: str
    scope: str
    metric: str
    baseline: float
    current: float
    limit: float
    held: bool
    #: how it was judged and on what (requests, confidence), in words.
    evidence: str
    #: for a broken rule, how far past its limit (1.0: at it), for ranking.
    excess: float = 0.0
    #: a status code a status-mix verdict is about.
    status: str | None = None

    @property
    def rank(self) -> tuple[int, float]:
        return KINDS[self.metric][1], -self.excess


@dataclass
class Unjudged:
    """A scope's measure that could not be judged, and what it would need."""

    scope: str
    metric: str
    reason: str


@dataclass
class Judge:
    """Judges rules on scopes at a share of the family-wise error rate."""

    alpha: float
    verdicts: list[Verdict] = field(default_factory=list)
    unjudged: list[Unjudged] = field(default_factory=list)

    def percentile(
        self,
        rule: Any,
        scope: str,
        baselines: list[dict[str, Any]],
        current: dict[str, Any],
    ) -> None:
        q = PERCENTILES[rule.metric]
        histograms: list[Histogram] = [b["histogram"] for b in baselines if b.get("histogram")]
        now = current.get("histogram")
        if now is None or len(histograms) < len(baselines):
            self.mean(rule, scope, baselines, current, note="no histogram: compared as points")
            return
        needed = requests_needed(q)
        fewest = min(total(h) for h in [*histograms, now])
        if fewest < needed:
            self._unjudged(scope, rule.metric, f"needs {needed:,} requests a run, has {fewest:,}")
            return
        seed = zlib.crc32(f"{scope}/{rule.text}".encode())
        low, middle = quantile_excess(now, histograms, q, rule.limit, self.alpha, seed)
        reference = max(point(h, q) for h in histograms)
        limit = rule.limit(reference)
        value = point(now, q)
        held = not low > 0
        evidence = (
            f"{rule.metric} over {total(now):,} requests against {sum(map(total, histograms)):,}"
            f": {'above' if not held else 'not surely above'} the limit "
            f"({100 * (1 - self.alpha):.2f} % sure; by {middle:+,.0f} ms at the median of the "
            "resampled runs)"
        )
        self._add(
            rule, scope, reference, value, limit, held, evidence, value / limit if limit else 0.0
        )

    def rate(
        self,
        rule: Any,
        scope: str,
        baselines: list[dict[str, Any]],
        current: dict[str, Any],
    ) -> None:
        before_failures = sum(b.get("failures") or 0 for b in baselines)
        before_requests = sum(b.get("requests") or 0 for b in baselines)
        reference = before_failures / before_requests if before_requests else 0.0
        limit = min(rule.limit(reference), 1.0)
        failures, requests = current.get("failures") or 0, current["requests"]
        need = requests_to_judge_rate(limit, self.alpha)
        if requests < need:
            self._unjudged(scope, rule.metric, f"needs {need:,} requests, this run {requests:,}")
            return
        p = excess_p_value(failures, requests, limit)
        needed = failures_needed(requests, limit, self.alpha)
        evidence = f"{failures:,} of {requests:,} failed; at the limit's rate, " + (
            f"{needed:,} or more would be a regression" if needed is not None else "none would be"
        )
        excess = (failures / requests) / limit if limit else float(failures > 0)
        held = p >= self.alpha
        self._add(rule, scope, reference, failures / requests, limit, held, evidence, excess)

    def statuses(
        self,
        rule: Any,
        scope: str,
        baselines: list[dict[str, Any]],
        current: dict[str, Any],
    ) -> None:
        now: dict[str, int] | None = current.get("statuses")
        before: list[dict[str, int]] = [b["statuses"] for b in baselines if b.get("statuses")]
        if not now or len(before) < len(baselines):
            return  # no status counts in one of the reports (a run over MQTT, say)
        requests = sum(now.values())
        before_total = sum(sum(b.values()) for b in before)
        for status, count in sorted(now.items()):
            had = sum(b.get(status, 0) for b in before)
            share = had / before_total if before_total else 0.0
            limit = min(rule.limit(share), 1.0)
            p = excess_p_value(count, requests, limit)
            if p >= self.alpha and count / requests <= limit:
                continue  # a status within its limit: nothing to say
            evidence = f"status {status}: {count:,} of {requests:,} answers"
            excess = (count / requests) / limit if limit else float(count > 0)
            held = p >= self.alpha
            self._add(rule, scope, share, count / requests, limit, held, evidence, excess, status)

    def deterministic(
        self,
        rule: Any,
        scope: str,
        baselines: list[dict[str, Any]],
        current: dict[str, Any],
    ) -> None:
        values = [b.get(rule.metric) for b in baselines]
        now = current.get(rule.metric)
        if now is None or any(v is None for v in values):
            return  # no Server-Timing (queries) or sizes in one of the reports
        counted = [b.get(f"{rule.metric}_requests") or b.get("requests") or 0 for b in baselines]
        here = current.get(f"{rule.metric}_requests") or current.get("requests") or 0
        if min([here, *counted]) < MIN_DETERMINISTIC:
            self._unjudged(scope, rule.metric, f"needs {MIN_DETERMINISTIC} requests on both sides")
            return
        reference = max(v for v in values if v is not None)
        limit = rule.limit(reference)
        evidence = f"per request, over {here:,} requests (the same every request: no test needed)"
        excess = now / limit if limit else 0.0
        self._add(rule, scope, reference, now, limit, not now > limit, evidence, excess)

    def mean(
        self,
        rule: Any,
        scope: str,
        baselines: list[dict[str, Any]],
        current: dict[str, Any],
        note: str = "a mean, compared as a point",
    ) -> None:
        values = [b.get(rule.metric) for b in baselines]
        now = current.get(rule.metric)
        if now is None or any(v is None or not math.isfinite(v) for v in values):
            return
        low = min([current.get("requests") or 0, *(b.get("requests") or 0 for b in baselines)])
        if low < MIN_REQUESTS:
            self._unjudged(scope, rule.metric, f"needs {MIN_REQUESTS} requests on both sides")
            return
        direction_up = rule.op in ("<=", "<")
        known = [v for v in values if v is not None]
        reference = max(known) if direction_up else min(known)
        limit = rule.limit(reference)
        held = rule.holds(now, limit)
        excess = now / limit if limit and direction_up else (limit / now if now else 0.0)
        self._add(rule, scope, reference, now, limit, held, note, excess)

    def _add(
        self,
        rule: Any,
        scope: str,
        baseline: float,
        current: float,
        limit: float,
        held: bool,
        evidence: str,
        excess: float,
        status: str | None = None,
    ) -> None:
        verdict = Verdict(
            rule.text, scope, rule.metric, baseline, current, limit, held, evidence, excess, status
        )
        self.verdicts.append(verdict)

    def _unjudged(self, scope: str, metric: str, reason: str) -> None:
        self.unjudged.append(Unjudged(scope, metric, reason))


def tests_in(metrics: list[str], scopes: int) -> int:
    """Statistical tests a comparison makes (deterministic rules are no test)."""
    return max(1, scopes * sum(1 for m in metrics if KINDS[m][0] in ("percentile", "counts")))
