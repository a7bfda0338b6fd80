"""What a Locust run measures for barnstorm's own report of it: the run over time (ingest
beside dashboards), per request name what the backend said (Server-Timing), the statuses
its answers had, the requests retried after a closed connection, and the verdicts over the
whole run (SLAs, and ``--max-failed`` for dashboard requests as for device messages).

Workers send theirs to the master with Locust's own reports; the process that holds the
whole run's statistics judges and writes.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from simulator.exitcodes import EXIT_FAILURES, EXIT_SLA
from simulator.locust.settings import fleet_environment, sla_texts, verdict_setting
from simulator.locust.stats import DEVICE_METHODS, Snapshot, snapshot, window_measures
from simulator.locust.traces import RECEIVERS
from simulator.locust.traces import collect as collect_traces
from simulator.metrics.server_timing import ServerTimings
from simulator.metrics.sla import Verdict, evaluate, parse_slas, write_junit
from simulator.report.html import write_mixed_html
from simulator.report.mixed import write_mixed_report


class Sampler:
    """Ingest beside dashboards over time, for the mixed run's HTML report
    (``--barnstorm-html``, as ``simulate mixed --html`` sets it): a row per interval."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.started = time.monotonic()
        self._last: tuple[float, Snapshot] | None = None
        self._greenlet: Any = None
        #: the fleet's connected devices now (the fleet plugin sets it).
        self.connected: Callable[[Environment], int] = lambda environment: 0

    @staticmethod
    def wanted(environment: Environment) -> bool:
        return bool(
            verdict_setting(environment, "html")
            or verdict_setting(environment, "report")
            or RECEIVERS
        )

    def start(self, environment: Environment) -> None:
        if not self.wanted(environment) or self._greenlet is not None:
            return
        every = float(os.environ.get("BARNSTORM_SAMPLE_SECONDS") or 2.0)
        self.started = time.monotonic()
        self._last = (self.started, snapshot(environment.stats))
        self._greenlet = gevent.spawn(self._loop, environment, every)

    def _loop(self, environment: Environment, every: float) -> None:
        while True:
            gevent.sleep(every)
            self.sample(environment)

    def sample(self, environment: Environment) -> None:
        if self._last is None:
            return
        now, current = time.monotonic(), snapshot(environment.stats)
        before_time, before = self._last
        self._last = (now, current)
        measures = window_measures(before, current, max(now - before_time, 1e-9))
        row: dict[str, Any] = {
            "wall_s": round(now - self.started, 3),
            "users": environment.runner.user_count if environment.runner else 0,
            "connected": self.connected(environment),
        }
        for scope in ("ingest", "dashboard"):
            measure = measures.get(scope)
            count = measure.count if measure else 0
            failures = measure.failures if measure else 0
            row[f"{scope}_rate"] = (
                round((count - failures) / (now - before_time), 3) if measure else 0.0
            )
            row[f"{scope}_p95"] = measure.quantile(0.95) if measure and count else None
            row[f"{scope}_error_rate"] = failures / count if count else 0.0
        self.rows.append(row)

    def write(
        self,
        environment: Environment,
        verdicts: list[Verdict],
        loop_lags: list[dict[str, Any]],
    ) -> None:
        path = verdict_setting(environment, "html")
        report = verdict_setting(environment, "report")
        if self._greenlet is not None:
            self._greenlet.kill()
            self.sample(environment)
        if not path and not report and not RECEIVERS:
            return
        stats = environment.stats
        last = stats.total.last_request_timestamp or stats.total.start_time
        seconds = max(last - stats.total.start_time, 1e-9)
        requests = request_entries(environment, seconds)
        traces = collect_traces(requests)  # the backend's spans, joined to the requests
        config = {
            key: "***"
            if any(word in key for word in ("PASSWORD", "TOKEN", "SECRET"))
            else re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", value)  # a password in a URL
            for key, value in sorted(fleet_environment(environment).items())
            if key.startswith("BARNSTORM_")
        }
        data = {
            "rows": self.rows,
            "fleet_loop_lag_ms": loop_lags,
            "requests": requests,
            "sla": [verdict.as_dict() for verdict in verdicts],
            "seconds": seconds,
            "host": environment.host,
            "run_id": os.environ.get("BARNSTORM_RUN_ID"),
            "config": config,
            "traces": traces,
        }
        for request in requests:
            suspicion = (request["backend"] or {}).get("n_plus_one")
            if suspicion:
                print(
                    f"barnstorm: N+1 suspected in {request['name']}: {suspicion}", file=sys.stderr
                )
        if path:
            write_mixed_html(data, Path(path))
        if report:
            write_mixed_report(data, verdicts, Path(report))


def request_entries(environment: Environment, seconds: float) -> list[dict[str, Any]]:
    """Per request name: its counts and latency (and the histogram behind it), what the
    backend said its time went to, the statuses of its answers, the real errors of its
    failures (an exception's name and message, never only "status 0"), the bytes of an
    answer, and the requests a closed connection made the user send again."""
    stats = environment.stats
    backend = SERVER_TIMINGS.summary()
    errors: dict[str, Counter[str]] = {}
    for error in stats.errors.values():
        errors.setdefault(error.name, Counter())[str(error.error)] += error.occurrences
    entries: list[dict[str, Any]] = []
    for (method, name), counts in sorted(snapshot(stats).items(), key=lambda kv: kv[0][1]):
        measure = window_measures({}, {(method, name): counts}, seconds)[name]
        entry = stats.entries.get((name, method))
        entries.append(
            {
                "name": name,
                "kind": "device" if method in DEVICE_METHODS else "dashboard",
                "requests": measure.count,
                "failures": measure.failures,
                "error_rate": measure.failures / measure.count if measure.count else 0.0,
                "rate_per_s": (measure.count - measure.failures) / seconds,
                "p50_ms": measure.quantile(0.5),
                "p95_ms": measure.quantile(0.95),
                "p99_ms": measure.quantile(0.99),
                "max_ms": measure.max_ms,
                # Locust's own histogram: milliseconds (rounded as it rounds them) -> count.
                "response_times": {str(ms): n for ms, n in sorted(counts.times.items())},
                "bytes_per_response": round(entry.avg_content_length, 1) if entry else None,
                "statuses": dict(sorted(STATUSES.get(name, {}).items())) or None,
                "errors": dict(errors.get(name, Counter()).most_common(10)),
                "retried_closed_connection": RETRIED.get(name, 0),
                "backend": backend.get(name),
            }
        )
    return entries


def judge_failures(environment: Environment) -> None:
    """``--max-failed`` over the whole run, for dashboard requests as for device messages
    (default 1 %): a share above it exits EXIT_FAILURES, one within it does not fail the
    run, however many requests failed (Locust would exit 1 on a single one)."""
    limit = max_failed(environment)
    totals: dict[str, list[int]] = {"dashboard requests": [0, 0], "device messages": [0, 0]}
    for (method, _), counts in snapshot(environment.stats).items():
        kind = "device messages" if method in DEVICE_METHODS else "dashboard requests"
        totals[kind][0] += counts.failures
        totals[kind][1] += counts.requests
    over = False
    for kind, (failed, count) in totals.items():
        if count and failed / count > limit:
            over = True
            print(
                f"barnstorm: too many failed: {failed:,} of {count:,} {kind} "
                f"({failed / count:.1%}), more than --max-failed {limit:.1%} allows",
                file=sys.stderr,
            )
    runner = environment.runner
    if over and not environment.process_exit_code:
        environment.process_exit_code = EXIT_FAILURES
    elif environment.process_exit_code is None and runner is not None and not runner.exceptions:
        environment.process_exit_code = 0  # failures within --max-failed: no failed run


def max_failed(environment: Environment) -> float:
    text = (verdict_setting(environment, "max-failed") or "1%").strip()
    try:
        value = float(text.removesuffix("%")) / 100.0
    except ValueError:
        raise ValueError(f'--max-failed: expected a percentage, got "{text}"') from None
    return min(max(value, 0.0), 1.0)


SAMPLER = Sampler()


@events.test_start.add_listener
def start_sampler(environment: Environment, **_: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        SAMPLER.start(environment)


def judge_slas(environment: Environment) -> list[Verdict]:
    """SLA verdicts over the whole run (``--barnstorm-sla``, or ``BARNSTORM_LOCUST_SLAS``
    as ``simulate mixed --sla`` sets it): printed, written as JUnit XML
    (``--barnstorm-junit``), and Locust exits with EXIT_SLA when one breaks. A capacity
    search judges its steps instead."""
    texts = sla_texts(environment)
    if not texts or environment.shape_class is not None:
        return []
    stats = environment.stats
    last = stats.total.last_request_timestamp or stats.total.start_time
    seconds = max(last - stats.total.start_time, 1e-9)
    measures = window_measures({}, snapshot(stats), seconds)
    verdicts = evaluate(parse_slas(texts), measures)
    for verdict in verdicts:
        print(f"SLA {'held  ' if verdict.held else 'BROKEN'} {verdict.detail}", file=sys.stderr)
    junit = verdict_setting(environment, "junit")
    if junit:
        write_junit(verdicts, Path(junit), seconds, "barnstorm SLAs (mixed)")
    if any(not verdict.held for verdict in verdicts) and not environment.process_exit_code:
        environment.process_exit_code = EXIT_SLA
    return verdicts


#: what the backend said about its time (Server-Timing), per request name; on the master,
#: the workers' merged.
SERVER_TIMINGS = ServerTimings()
TIMING_KEY = "barnstorm_server_timing"


#: answers per status code, per request name (dashboard requests); on the master, merged.
STATUSES: dict[str, Counter[str]] = {}
#: requests sent again after the server closed a reused connection, per request name.
RETRIED: Counter[str] = Counter()
#: the request name a user is sending, for the retries of its connection pool to count.
SENDING: ContextVar[str] = ContextVar("barnstorm_sending", default="")
STATUS_KEY = "barnstorm_statuses"


@events.request.add_listener
def read_server_timing(
    request_type: str,
    name: str,
    response_time: float,
    response_length: int,
    exception: BaseException | None = None,
    context: Any = None,
    response: Any = None,
    **_: Any,
) -> None:
    """Keep the Server-Timing header of every response that has one (dashboard requests;
    the devices' results come without a response). Every argument Locust passes is named:
    this runs for every device result, and gathering unnamed ones into ``_`` would cost a
    dictionary each."""
    if response is None:
        return
    status = getattr(response, "status_code", 0) or 0
    statuses = STATUSES.get(name)
    if statuses is None:
        statuses = STATUSES[name] = Counter()
    statuses[str(status) if status else "no answer"] += 1
    headers = getattr(response, "headers", None)
    if not headers:
        return
    header = headers.get("Server-Timing")
    if header:
        SERVER_TIMINGS.observe(name, header, response_length or 0, time.time())


@events.test_start.add_listener
def reset_server_timing(environment: Environment, **_: Any) -> None:
    SERVER_TIMINGS.by_name.clear()
    STATUSES.clear()
    RETRIED.clear()


@events.report_to_master.add_listener
def report_timing(client_id: str, data: dict[str, Any], **_: Any) -> None:
    data[TIMING_KEY] = SERVER_TIMINGS.take()
    data[STATUS_KEY] = {
        "statuses": {name: dict(counts) for name, counts in STATUSES.items()},
        "retried": dict(RETRIED),
    }
    STATUSES.clear()
    RETRIED.clear()


@events.worker_report.add_listener
def collect_timing(client_id: str, data: dict[str, Any], **_: Any) -> None:
    if TIMING_KEY in data:
        SERVER_TIMINGS.merge(data[TIMING_KEY])
    if STATUS_KEY in data:
        for name, counts in data[STATUS_KEY]["statuses"].items():
            STATUSES.setdefault(name, Counter()).update(counts)
        RETRIED.update(data[STATUS_KEY]["retried"])
