"""The backend's traces in a Locust run (``--barnstorm-otlp-receiver HOST:PORT``, or
``BARNSTORM_OTLP_RECEIVER``; ``simulate mixed --otlp-receiver``): the process that holds the
whole run's statistics (the master, or the only process) receives the backend's spans while
the test lasts, and at the end names their flows after the dashboard map's views and
requests and the devices' request names, for barnstorm's report of the run.

The trace headers of every dashboard request come from :data:`TRACE`; with a receiver and
no ``BARNSTORM_TRACE_SAMPLE``, every request is marked sampled (a backend whose sampler
follows its caller's flag would otherwise send nothing back).
"""

from __future__ import annotations

import atexit
import os
import sys
import time
from pathlib import Path
from typing import Any

from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from simulator.errors import ConfigError
from simulator.locust.dashboard_map import DashboardMap, load_map
from simulator.report.traces import by_request, summary_lines, traces_section
from simulator.traces.context import SAMPLE_VARIABLE, TraceContext, current_run_id
from simulator.traces.export import ClientSpans, export_url
from simulator.traces.receiver import Receiver, parse_listen, start

RECEIVER_VARIABLE = "BARNSTORM_OTLP_RECEIVER"
EXPORT_VARIABLE = "BARNSTORM_OTLP_EXPORT"
#: a file the receiver appends a line to per joined trace (trace id, flow and request tags,
#: the server span's path): an audit of the joins.
JOINS_VARIABLE = "BARNSTORM_OTLP_JOINS"
#: the trace headers of this process's dashboard requests.
TRACE = TraceContext(current_run_id())
#: the running receiver of this process (the master's, or a single process's).
RECEIVERS: list[Receiver] = []


@events.init_command_line_parser.add_listener
def add_trace_options(parser: Any) -> None:
    parser.add_argument(
        "--barnstorm-otlp-receiver",
        env_var=RECEIVER_VARIABLE,
        help="Receive the backend's OpenTelemetry traces at http://HOST:PORT/v1/traces and "
        "join them to the run's requests in barnstorm's report.",
        include_in_web_ui=False,
    )
    parser.add_argument(
        "--barnstorm-otlp-export",
        env_var=EXPORT_VARIABLE,
        help="Send barnstorm's client span of each sampled request to this OTLP/HTTP URL.",
        include_in_web_ui=False,
    )


def _setting(environment: Environment, option: str, variable: str) -> str | None:
    """A ``--barnstorm-*`` option, else its variable (set for Locust by simulate mixed)."""
    options = environment.parsed_options
    given = getattr(options, option, None) if options else None
    return str(given) if given else os.environ.get(variable) or None


@events.init.add_listener
def start_export(environment: Environment, **_: Any) -> None:
    """Each process that sends requests exports its own client spans."""
    url = _setting(environment, "barnstorm_otlp_export", EXPORT_VARIABLE)
    if not url or isinstance(environment.runner, MasterRunner) or TRACE.exporter is not None:
        return
    if not os.environ.get(SAMPLE_VARIABLE):
        TRACE.sample = 1.0
    try:
        TRACE.exporter = ClientSpans(export_url(url, "--barnstorm-otlp-export"), TRACE.run)
    except ConfigError as exc:
        print(f"barnstorm: {exc}", file=sys.stderr)
        sys.exit(2)


@events.request.add_listener
def export_span(
    name: str,
    response_time: float,
    response: Any = None,  # none for what fires no HTTP answer (a device message)
    exception: BaseException | None = None,
    start_time: float | None = None,
    **_: Any,
) -> None:
    """The client span of a dashboard request that carried trace context."""
    exporter = TRACE.exporter
    request = getattr(response, "request", None)
    if exporter is None or request is None:
        return  # a device message (the fleet exports its own), or no export
    parent = request.headers.get("traceparent")
    if not parent:
        return
    start = start_time if start_time is not None else time.time() - response_time / 1000
    exporter.add(
        parent,
        name,
        int(start * 1e9),
        int((start + response_time / 1000) * 1e9),
        method=str(request.method),
        url=str(request.url),
        status=getattr(response, "status_code", None) or None,
        error=f"{type(exception).__name__}: {exception}" if exception else None,
    )


@events.init.add_listener
def start_receiver(environment: Environment, **_: Any) -> None:
    """Before the first request: the receiver, on the process that writes the report."""
    listen = _setting(environment, "barnstorm_otlp_receiver", RECEIVER_VARIABLE)
    if not listen:
        return
    if not os.environ.get(SAMPLE_VARIABLE):
        TRACE.sample = 1.0  # the receiver is asked for: mark every request sampled
    if isinstance(environment.runner, WorkerRunner) or RECEIVERS:
        return
    try:
        parse_listen(listen, "--barnstorm-otlp-receiver")
        joins = os.environ.get(JOINS_VARIABLE)
        RECEIVERS.append(start(listen, TRACE.run, Path(joins) if joins else None))
    except ConfigError as exc:
        print(f"barnstorm: {exc}", file=sys.stderr)
        sys.exit(2)


@atexit.register
def stop_receiver() -> None:
    """A receiver no report collected (a run without one): stopped as the process ends,
    whatever order Locust's quitting hooks run in."""
    for receiver in RECEIVERS:
        receiver.stop()


@events.quitting.add_listener
def close_export(environment: Environment, **_: Any) -> None:
    """The client spans still queued are sent before the process ends."""
    if TRACE.exporter is not None:
        counts = TRACE.exporter.close()
        if counts["failed"] or counts["dropped"]:
            print(
                f"barnstorm: client spans to {counts['url']}: {counts['exported']:,} sent, "
                f"{counts['failed']:,} failed ({counts['last_error']}), "
                f"{counts['dropped']:,} dropped",
                file=sys.stderr,
            )


def flow_pairs(dashboards: DashboardMap, device_names: list[str]) -> list[tuple[str, str]]:
    """Every (flow, request name) a Locust run sends: the map's login and views, and the
    devices' requests (``ingest <type>``) and publishes (``publish <type>``)."""
    pairs: list[tuple[str, str]] = []
    if dashboards.login is not None:
        login = dashboards.login
        pairs.append(("login", f"{login.method} {login.url}"))
    pairs += [(view.name, spec.name) for view in dashboards.views for spec in view.requests]
    for name in device_names:
        pairs.append((name.split(" ", 1)[0], name))
    pairs.append(("ingest", "ingest batch"))
    return pairs


def collect(requests: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The ``traces`` section of the run's report, once the backend's last batch is in;
    each request entry gets its own figures as ``traces``. None without a receiver."""
    if not RECEIVERS:
        return None
    given = os.environ.get("BARNSTORM_DASHBOARD_MAP")
    dashboards = load_map(Path(given) if given else None)  # the users' own map, read again
    receiver = RECEIVERS.pop()
    try:
        summary = receiver.finish()
    except OSError as exc:
        print(f"barnstorm: the trace receiver did not answer: {exc}", file=sys.stderr)
        return {"receiver": receiver.address, "error": str(exc)}
    devices = [r["name"] for r in requests if r["kind"] == "device"]
    # a message is no request: the share of publishes whose trace came is not told
    counts = {r["name"]: r["requests"] for r in requests if not r["name"].startswith("publish ")}
    section = traces_section(summary, flow_pairs(dashboards, devices), counts, receiver.address)
    figures = by_request(section)
    for request in requests:
        request["traces"] = figures.get(request["name"])
    for line in summary_lines(section):
        print(f"barnstorm: {line}", file=sys.stderr)
    return section
