"""The backend's spans folded into what each simulated flow cost it.

Spans arrive in batches, a trace's spread over several, children usually before their
parent. :class:`TraceFolder` keeps each open trace of the run (a trace whose id carries the
run's tag) until it settles, then folds it into its flow's figures and forgets it: memory
holds the open traces and a few numbers per flow, whatever the length of the run. A trace
settles once its entry span (the backend's server or consumer span that continued
barnstorm's request) arrived and nothing more came for ``settle_s``, or ``stale_s`` after
its first span in any case; too many open traces fold the oldest.

Per flow: the traces that arrived, the server's time, database spans per request and their
time, external calls (client spans that are not database ones), the share of the server
span's time that no child span covers (where tracing is blind), and statements repeated
many times within one trace (an N+1: the statement, normalised, and how many times).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from simulator.traces.context import FlowKey, flow_key, read_trace_id
from simulator.traces.spans import CLIENT, CONSUMER, SERVER, Span, normalise

#: the same statement this many times in one trace is an N+1.
N_PLUS_ONE_REPEATS = 10
#: database spans per request growing this many times over a run, and by this many, is
#: flagged (the data grows, the queries with it).
GROWTH_FACTOR = 2.0
GROWTH_MIN = 5.0
MAX_OPEN_TRACES = 20_000
#: spans' time intervals kept for the open traces together (coverage of the server span).
MAX_INTERVALS = 2_000_000
#: the time series: windows of this many seconds at first, doubled to keep at most
#: MAX_WINDOWS of them.
FIRST_WINDOW_S = 5.0
MAX_WINDOWS = 240
_ENTRY = (SERVER, CONSUMER)


class _Open:
    """A trace of the run not yet folded."""

    __slots__ = (
        "children",
        "db",
        "db_ns",
        "entry",
        "external",
        "first",
        "key",
        "last",
        "spans",
        "statements",
    )

    def __init__(self, key: FlowKey, now: float) -> None:
        self.key = key
        self.entry: Span | None = None
        #: parent span id -> its children's (start, end).
        self.children: dict[bytes, list[tuple[int, int]]] = {}
        self.db = 0
        self.db_ns = 0
        self.external = 0
        self.statements: Counter[str] = Counter()
        self.first = now
        self.last = now
        self.spans = 0


@dataclass
class _Repeated:
    traces: int = 0
    max_repeats: int = 0
    repeats: int = 0


@dataclass
class FlowFigures:
    """One flow's figures over the run (a flow: a request name within a view or ingest)."""

    traces: int = 0
    spans: int = 0
    entries: int = 0
    server_ns: int = 0
    server_max_ns: int = 0
    uncovered_ns: int = 0
    #: the longest stretch of each request's server time without a child span, summed.
    gap_ns: int = 0
    db: int = 0
    db_ns: int = 0
    external: int = 0
    routes: Counter[str] = field(default_factory=Counter)
    repeated: dict[str, _Repeated] = field(default_factory=dict)


class TraceFolder:
    """Spans in, per-flow figures out; see the module's docstring."""

    def __init__(
        self,
        run_tag: bytes,
        *,
        settle_s: float = 1.0,
        stale_s: float = 30.0,
        on_fold: Callable[[bytes, FlowKey, Span | None], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run_tag = run_tag
        self.settle_s = settle_s
        self.stale_s = stale_s
        self.on_fold = on_fold
        self.clock = clock
        self.started = clock()
        #: the run's start on the spans' clock (the epoch): the time series counts from it.
        self.wall_started_ns = time.time_ns()
        self.open: dict[bytes, _Open] = {}
        self.flows: dict[FlowKey, FlowFigures] = {}
        self.received = 0
        self.joined = 0
        self.unjoined: Counter[str] = Counter()
        self.without_entry = 0
        self.intervals = 0
        self.window_s = FIRST_WINDOW_S
        self.windows: dict[int, dict[FlowKey, list[int]]] = {}
        self._normalised: dict[str, str] = {}

    def add(self, spans: Iterable[Span]) -> None:
        """Take the spans of one export request."""
        now = self.clock()
        for span in spans:
            self.received += 1
            key = read_trace_id(span.trace_id, self.run_tag)
            if key is None:
                self.unjoined[span.service] += 1
                continue
            self.joined += 1
            trace = self.open.get(span.trace_id)
            if trace is None:
                if len(self.open) >= MAX_OPEN_TRACES:
                    self._fold_oldest()
                trace = self.open[span.trace_id] = _Open(key, now)
            trace.last = now
            trace.spans += 1
            if span.kind in _ENTRY and (trace.entry is None or span.start < trace.entry.start):
                if trace.entry is not None:  # an inner server span: a child like others
                    self._child(trace, trace.entry)
                trace.entry = span
            else:
                self._child(trace, span)
            if span.db:
                trace.db += 1
                trace.db_ns += span.duration
                if span.statement:
                    trace.statements[self._normalise(span.statement)] += 1
            elif span.kind == CLIENT:
                trace.external += 1
        if self.intervals > MAX_INTERVALS:
            while self.open and self.intervals > MAX_INTERVALS // 2:
                self._fold_oldest()

    def _child(self, trace: _Open, span: Span) -> None:
        trace.children.setdefault(span.parent_id, []).append((span.start, span.end))
        self.intervals += 1

    def _normalise(self, statement: str) -> str:
        found = self._normalised.get(statement)
        if found is None:
            if len(self._normalised) > 10_000:
                self._normalised.clear()
            found = self._normalised[statement] = normalise(statement)
        return found

    def settle(self, everything: bool = False) -> int:
        """Fold the traces that have settled (all of them with ``everything``); how many."""
        now = self.clock()
        done = [
            trace_id
            for trace_id, trace in self.open.items()
            if everything
            or now - trace.first >= self.stale_s
            or (trace.entry is not None and now - trace.last >= self.settle_s)
        ]
        for trace_id in done:
            self._fold(trace_id)
        return len(done)

    def _fold_oldest(self) -> None:
        oldest = min(self.open, key=lambda trace_id: self.open[trace_id].first)
        self._fold(oldest)

    def _fold(self, trace_id: bytes) -> None:
        trace = self.open.pop(trace_id)
        self.intervals -= sum(len(c) for c in trace.children.values())
        figures = self.flows.get(trace.key)
        if figures is None:
            figures = self.flows[trace.key] = FlowFigures()
        figures.traces += 1
        figures.spans += trace.spans
        figures.db += trace.db
        figures.db_ns += trace.db_ns
        figures.external += trace.external
        for statement, count in trace.statements.items():
            if count >= N_PLUS_ONE_REPEATS:
                repeated = figures.repeated.get(statement)
                if repeated is None:
                    if len(figures.repeated) >= 20:
                        continue
                    repeated = figures.repeated[statement] = _Repeated()
                repeated.traces += 1
                repeated.repeats += count
                repeated.max_repeats = max(repeated.max_repeats, count)
        entry = trace.entry
        if entry is None:
            self.without_entry += 1
        else:
            figures.entries += 1
            duration = entry.duration
            figures.server_ns += duration
            figures.server_max_ns = max(figures.server_max_ns, duration)
            covered, gap = _coverage(trace.children.get(entry.span_id, []), entry.start, entry.end)
            figures.uncovered_ns += duration - covered
            figures.gap_ns += gap
            route = entry.route or entry.path
            if route and (route in figures.routes or len(figures.routes) < 50):
                figures.routes[route] += 1
            self._window(entry.end, trace)
        if self.on_fold is not None:
            self.on_fold(trace_id, trace.key, entry)

    def _window(self, end_ns: int, trace: _Open) -> None:
        elapsed = max((end_ns - self.wall_started_ns) / 1e9, 0.0)
        index = int(elapsed // self.window_s)
        while index >= MAX_WINDOWS:
            merged: dict[int, dict[FlowKey, list[int]]] = {}
            for old, flows in self.windows.items():
                into = merged.setdefault(old // 2, {})
                for key, values in flows.items():
                    target = into.setdefault(key, [0, 0, 0])
                    for i, value in enumerate(values):
                        target[i] += value
            self.windows = merged
            self.window_s *= 2
            index //= 2
        row = self.windows.setdefault(index, {}).setdefault(trace.key, [0, 0, 0])
        row[0] += 1
        row[1] += trace.db
        row[2] += trace.entry.duration if trace.entry else 0

    def summary(self) -> dict[str, Any]:
        """The figures so far (open traces not included: ``settle(everything=True)``
        first at the end of a run), flows by their keys."""
        flows: list[dict[str, Any]] = []
        for key, f in self.flows.items():
            entries = max(f.entries, 1)
            flows.append(
                {
                    "flow_tag": key.flow,
                    "name_tag": key.name,
                    "traces": f.traces,
                    "spans": f.spans,
                    "server_ms_mean": round(f.server_ns / entries / 1e6, 3) if f.entries else None,
                    "server_ms_max": round(f.server_max_ns / 1e6, 3) if f.entries else None,
                    "db_spans_per_request": round(f.db / f.traces, 3),
                    "db_ms_per_request": round(f.db_ns / f.traces / 1e6, 3),
                    "external_per_request": round(f.external / f.traces, 3),
                    "uncovered_share": round(f.uncovered_ns / f.server_ns, 4)
                    if f.server_ns
                    else None,
                    "gap_ms_mean": round(f.gap_ns / entries / 1e6, 3) if f.entries else None,
                    "gap_share": round(f.gap_ns / f.server_ns, 4) if f.server_ns else None,
                    "route": f.routes.most_common(1)[0][0] if f.routes else None,
                    "repeated_statements": [
                        {
                            "statement": statement,
                            "traces": r.traces,
                            "max_repeats": r.max_repeats,
                            "mean_repeats": round(r.repeats / r.traces, 1),
                        }
                        for statement, r in sorted(
                            f.repeated.items(), key=lambda item: -item[1].max_repeats
                        )
                    ],
                    "growing": self._growth(key),
                }
            )
        flows.sort(key=lambda flow: -flow["traces"])
        rows = [
            {
                "t": round(index * self.window_s, 3),
                "flow_tag": key.flow,
                "name_tag": key.name,
                "traces": values[0],
                "db_spans_per_request": round(values[1] / values[0], 3),
                "server_ms_mean": round(values[2] / values[0] / 1e6, 3),
            }
            for index in sorted(self.windows)
            for key, values in self.windows[index].items()
            if values[0]
        ]
        return {
            "spans": {
                "received": self.received,
                "joined": self.joined,
                "unjoined": sum(self.unjoined.values()),
            },
            "unjoined_services": dict(self.unjoined.most_common(20)),
            "traces_open": len(self.open),
            "traces_without_entry": self.without_entry,
            "flows": flows,
            "window_s": self.window_s,
            "rows": rows,
        }

    def _growth(self, key: FlowKey) -> dict[str, Any] | None:
        """Database spans per request from the first third of the run to the last, when
        they grew ``GROWTH_FACTOR`` times and by ``GROWTH_MIN`` at least."""
        points = [
            (index, flows[key][1] / flows[key][0])
            for index, flows in sorted(self.windows.items())
            if key in flows and flows[key][0] >= 2
        ]
        if len(points) < 3:
            return None
        third = max(len(points) // 3, 1)
        first = sum(v for _, v in points[:third]) / third
        last = sum(v for _, v in points[-third:]) / third
        if last >= first * GROWTH_FACTOR and last - first >= GROWTH_MIN:
            return {"from": round(first, 2), "to": round(last, 2)}
        return None


def _coverage(intervals: list[tuple[int, int]], start: int, end: int) -> tuple[int, int]:
    """How much of ``start``..``end`` the intervals cover together, and the longest stretch
    they leave uncovered (one blocking call no span wraps, rather than the many small
    gaps of a framework's own work between its queries)."""
    covered = 0
    gap = 0
    reach = start
    for low, high in sorted(intervals):
        low, high = max(low, reach), min(high, end)
        if high > low:
            gap = max(gap, low - reach)
            covered += high - low
            reach = high
    return covered, max(gap, end - reach)


def name_flows(
    summary: dict[str, Any], names: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, Any]]:
    """The summary's flows under their names: ``names`` are the (flow, request name) pairs
    the run sent (views and their requests; ``ingest`` and its device types). A flow no
    pair names keeps its tags as its name."""
    known = {flow_key(flow, name): (flow, name) for flow, name in names}
    named: dict[tuple[str, str], dict[str, Any]] = {}
    for flow in summary.get("flows", []):
        key = FlowKey(flow["flow_tag"], flow["name_tag"])
        pair = known.get(key, (f"flow {key.flow}", f"request {key.name}"))
        named[pair] = flow
    return named
