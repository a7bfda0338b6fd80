"""Where a backend says its time went: W3C ``Server-Timing`` headers, per request name.

Any backend can send the header (Django, Rails, Starlette and Spring have middlewares for
it; barnstorm's reference backend always does)::

    Server-Timing: db;dur=12.3;desc="4 queries", app;dur=1.1

barnstorm reads each response's header and keeps, per request name, the mean duration of
each component and the queries per request (from a ``desc`` such as ``"4 queries"``, or
a component named ``queries``/``db_queries`` with a count in its description or value).
Without the header nothing is kept and nothing changes.

It also watches for an N+1 (querying while iterating over a collection instead of
loading it at once): an endpoint whose queries per request grow with what it returns
(its response size) or with the data over the run (the last third of its requests
against the first).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

_QUERIES = re.compile(r"(\d+)\s*(?:db\s*)?(?:queries|query|statements?)\b", re.I)
#: at least this many queries between the fewest and the most per request before the
#: growth or the correlation can mean an N+1 rather than a second query now and then.
N_PLUS_ONE_SPAN = 5
#: queries per request that follow the response size this closely (Pearson r).
N_PLUS_ONE_CORRELATION = 0.8
#: the last third of an endpoint's requests against its first: this much more per request.
N_PLUS_ONE_GROWTH = 1.2
#: seconds of one bucket of the queries-over-time record.
BUCKET_SECONDS = 2.0


def parse(header: str) -> dict[str, tuple[float | None, str | None]]:
    """``{name: (dur in ms or None, desc or None)}`` of one Server-Timing header (several
    headers joined with commas are one)."""
    out: dict[str, tuple[float | None, str | None]] = {}
    for metric in _split(header, ","):
        parts = [p.strip() for p in _split(metric, ";")]
        name = parts[0].strip().lower() if parts else ""
        if not name:
            continue
        duration: float | None = None
        description: str | None = None
        for param in parts[1:]:
            key, _, value = param.partition("=")
            key, value = key.strip().lower(), value.strip()
            if value.startswith('"') and value.endswith('"') and len(value) >= 2:
                value = value[1:-1].replace('\\"', '"')
            if key == "dur":
                try:
                    duration = float(value)
                except ValueError:
                    duration = None
                if duration is not None and not math.isfinite(duration):
                    duration = None
            elif key == "desc":
                description = value
        previous = out.get(name)
        if previous is not None:  # the same name twice: its parts add up
            if previous[0] is not None:
                duration = previous[0] + (duration or 0.0)
            description = description if description is not None else previous[1]
        out[name] = (duration, description)
    return out


#: a run of text up to ``,`` or ``;`` outside double quotes (an unclosed quote runs to the end).
_PARTS = {sep: re.compile(rf'(?:[^{sep}"]|"[^"]*(?:"|$))+') for sep in (",", ";")}


def _split(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside double quotes, leaving out blank parts."""
    return [part for part in _PARTS[separator].findall(text) if part.strip()]


def queries_of(metrics: dict[str, tuple[float | None, str | None]]) -> int | None:
    """The queries a response says it ran: ``desc="4 queries"`` on any metric, or a metric
    named ``queries`` (``queries;desc=4`` or ``queries;dur=4``); None when it does not say."""
    for name in ("queries", "db_queries", "sql_queries"):
        if name in metrics:
            duration, description = metrics[name]
            if description is not None and description.strip().isdigit():
                return int(description.strip())
            if duration is not None:
                return int(duration)
    total = None
    for _, description in metrics.values():
        if description:
            match = _QUERIES.search(description)
            if match:
                total = (total or 0) + int(match[1])
    return total


@dataclass
class EndpointTiming:
    """One request name's Server-Timing figures, as sums that merge across processes."""

    responses: int = 0
    #: sum of each component's duration (ms) and how many responses had it.
    durations: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    #: requests that said how many queries ran, and sums for the N+1 watch.
    with_queries: int = 0
    queries: float = 0.0
    queries_sq: float = 0.0
    size: float = 0.0
    size_sq: float = 0.0
    queries_size: float = 0.0
    min_queries: int | None = None
    max_queries: int | None = None
    #: requests and queries per BUCKET_SECONDS of epoch time: {bucket: [requests, queries]}.
    buckets: dict[int, list[float]] = field(default_factory=dict)

    def observe(self, header: str, size: int, at: float) -> None:
        self.observe_parsed(parse(header), size, at)

    def observe_parsed(
        self, metrics: dict[str, tuple[float | None, str | None]], size: int, at: float
    ) -> None:
        """:meth:`observe` of a header already parsed."""
        if not metrics:
            return
        self.responses += 1
        for name, (duration, _) in metrics.items():
            if duration is not None:
                self.durations[name] = self.durations.get(name, 0.0) + duration
                self.counts[name] = self.counts.get(name, 0) + 1
        count = queries_of(metrics)
        if count is None:
            return
        self.with_queries += 1
        self.queries += count
        self.queries_sq += count * count
        self.size += size
        self.size_sq += size * size
        self.queries_size += count * size
        self.min_queries = count if self.min_queries is None else min(self.min_queries, count)
        self.max_queries = count if self.max_queries is None else max(self.max_queries, count)
        bucket = self.buckets.setdefault(int(at // BUCKET_SECONDS), [0, 0.0])
        bucket[0] += 1
        bucket[1] += count

    def merge(self, other: dict[str, Any]) -> None:
        """Add another process's figures (``as_sums()``)."""
        self.responses += other["responses"]
        for name, value in other["durations"].items():
            self.durations[name] = self.durations.get(name, 0.0) + value
        for name, value in other["counts"].items():
            self.counts[name] = self.counts.get(name, 0) + value
        for key in ("with_queries", "queries", "queries_sq", "size", "size_sq", "queries_size"):
            setattr(self, key, getattr(self, key) + other[key])
        for key, pick in (("min_queries", min), ("max_queries", max)):
            theirs, mine = other[key], getattr(self, key)
            if theirs is not None:
                setattr(self, key, theirs if mine is None else pick(mine, theirs))
        for key, (requests, queries) in other["buckets"].items():
            bucket = self.buckets.setdefault(int(key), [0, 0.0])
            bucket[0] += requests
            bucket[1] += queries

    def as_sums(self) -> dict[str, Any]:
        return {
            "responses": self.responses,
            "durations": dict(self.durations),
            "counts": dict(self.counts),
            "with_queries": self.with_queries,
            "queries": self.queries,
            "queries_sq": self.queries_sq,
            "size": self.size,
            "size_sq": self.size_sq,
            "queries_size": self.queries_size,
            "min_queries": self.min_queries,
            "max_queries": self.max_queries,
            "buckets": {str(key): list(value) for key, value in self.buckets.items()},
        }

    def n_plus_one(self) -> str | None:
        """Why this endpoint looks like an N+1, or None."""
        if self.with_queries < 3 or self.min_queries is None or self.max_queries is None:
            return None
        if self.max_queries - self.min_queries < N_PLUS_ONE_SPAN:
            return None
        (early_n, early_q), (late_n, late_q) = self._first_and_last_thirds()
        if early_n and late_n:
            early, late = early_q / early_n, late_q / late_n
            if late >= N_PLUS_ONE_GROWTH * early and late - early >= N_PLUS_ONE_SPAN:
                return f"queries per request grew from {early:,.0f} to {late:,.0f} during the run"
        n = self.with_queries
        var_q = self.queries_sq / n - (self.queries / n) ** 2
        var_s = self.size_sq / n - (self.size / n) ** 2
        if var_q > 0 and var_s > 0:
            cov = self.queries_size / n - (self.queries / n) * (self.size / n)
            r = cov / math.sqrt(var_q * var_s)
            if r >= N_PLUS_ONE_CORRELATION:
                return (
                    f"queries per request ({self.min_queries:,}–{self.max_queries:,}) grow "
                    f"with the response size (r = {r:.2f})"
                )
        return None

    def _first_and_last_thirds(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """(requests, queries) of the first and the last third of the requests, in time."""
        ordered = [self.buckets[key] for key in sorted(self.buckets)]
        total = sum(n for n, _ in ordered)
        first, last = [0.0, 0.0], [0.0, 0.0]
        seen = 0.0
        for requests, queries in ordered:
            if seen + requests <= total / 3:
                first[0] += requests
                first[1] += queries
            elif seen >= 2 * total / 3:
                last[0] += requests
                last[1] += queries
            seen += requests
        return (first[0], first[1]), (last[0], last[1])

    def summary(self) -> dict[str, Any]:
        """Mean ms per component, mean queries per request and the N+1 verdict."""
        return {
            "responses": self.responses,
            "ms": {
                name: round(self.durations[name] / self.counts[name], 3)
                for name in sorted(self.durations)
                if self.counts.get(name)
            },
            "queries_per_request": round(self.queries / self.with_queries, 2)
            if self.with_queries
            else None,
            "max_queries": self.max_queries,
            "n_plus_one": self.n_plus_one(),
        }


@dataclass
class ServerTimings:
    """Every request name's :class:`EndpointTiming` of one process or a merged run."""

    by_name: dict[str, EndpointTiming] = field(default_factory=dict)

    def observe(self, name: str, header: str, size: int, at: float) -> None:
        self.observe_parsed(name, parse(header), size, at)

    def observe_parsed(
        self, name: str, metrics: dict[str, tuple[float | None, str | None]], size: int, at: float
    ) -> None:
        """:meth:`observe` of a header already parsed."""
        entry = self.by_name.get(name)
        if entry is None:
            entry = self.by_name[name] = EndpointTiming()
        entry.observe_parsed(metrics, size, at)

    def take(self) -> dict[str, dict[str, Any]]:
        """The sums so far, and start again (what a worker reports to the master)."""
        sums = {name: entry.as_sums() for name, entry in self.by_name.items()}
        self.by_name = {}
        return sums

    def merge(self, sums: dict[str, dict[str, Any]]) -> None:
        for name, other in sums.items():
            self.by_name.setdefault(name, EndpointTiming()).merge(other)

    def summary(self) -> dict[str, dict[str, Any]]:
        return {
            name: entry.summary() for name, entry in sorted(self.by_name.items()) if entry.responses
        }


def growth_across_steps(steps: list[dict[str, dict[str, Any]]]) -> list[dict[str, str]]:
    """Endpoints whose queries per request grew with the load, over the steps of a capacity
    search or the intervals of a soak (each a :meth:`ServerTimings.summary`), or that
    looked like an N+1 within a step."""
    found: dict[str, str] = {}
    names = {name for step in steps for name in step}
    for name in sorted(names):
        series = [
            (n + 1, step[name]["queries_per_request"])
            for n, step in enumerate(steps)
            if name in step and step[name].get("queries_per_request") is not None
        ]
        if len(series) >= 2:
            (first_step, first), (last_step, last) = series[0], series[-1]
            if last >= N_PLUS_ONE_GROWTH * first and last - first >= N_PLUS_ONE_SPAN:
                found[name] = (
                    f"queries per request grew from {first:,.0f} (step {first_step}) to "
                    f"{last:,.0f} (step {last_step})"
                )
                continue
        for n, step in enumerate(steps):
            why = (step.get(name) or {}).get("n_plus_one")
            if why:
                found[name] = f"{why} (step {n + 1})"
                break
    return [{"name": name, "why": why} for name, why in found.items()]
