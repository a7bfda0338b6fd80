"""The device fleet as a Locust plugin: no users of its own, added to any locustfile.

    locust -f my_dashboards.py,locustfiles/fleet.py --host http://127.0.0.1:8080 \\
        --barnstorm-farms 500 --barnstorm-mqtt mqtt://broker:1883

Importing this module registers event hooks on Locust's global events, as plugins do. At
test start each Locust process that runs users starts barnstorm's device engine as a child
process (``simulate run --stream-results``: asyncio never shares a process with gevent)
and turns every device result it streams back into a Locust request event, so devices
appear beside the suite's own requests in Locust's web UI, CSV, JSON and HTML report
(``publish cough_monitor``). The web UI's "Device fleet" tab shows the connected devices
and the message rate while it runs. Stopping the test interrupts the fleet, which settles
its books and flushes its last results before it exits. With no users (``-u 0``) a run
that is not distributed ends when the fleet's duration does.

The fleet is configured by ``--barnstorm-*`` options (in ``locust --help``, the web UI's
custom parameters and ``locust.conf``), each also read from its ``BARNSTORM_*`` variable,
and by every other ``BARNSTORM_*`` variable of ``simulate run``. Under Locust's master and
workers (``--processes N``, or ``--master --expect-workers N`` and ``--worker`` across
machines) each worker runs fleet shard ``worker_index`` of N (N from ``--expect-workers``,
or ``BARNSTORM_WORKER_COUNT``), so every farm runs exactly once and device client ids never
clash; the workers report their fleet's status to the master with Locust's own reports.

SLAs over both kinds of load (``--barnstorm-sla``), their JUnit XML (``--barnstorm-junit``)
and barnstorm's HTML page of the run (``--barnstorm-html``) are judged and written by the
process that holds the whole run's statistics.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gevent
import orjson
from gevent import subprocess
from locust import events
from locust.env import Environment
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

from simulator.errors import ConfigError
from simulator.exitcodes import EXIT_FAILED, EXIT_SLA, EXIT_USAGE
from simulator.locust.stats import DEVICE_METHODS, Snapshot, snapshot, window_measures
from simulator.metrics.server_timing import ServerTimings
from simulator.metrics.sla import Verdict, evaluate, parse_slas, write_junit
from simulator.report.html import write_mixed_html
from simulator.report.mixed import write_mixed_report

REPORT_KEY = "barnstorm_fleet"
TAB = "barnstorm-fleet"
RATE_WINDOW = 5.0  # seconds over which the message rate is measured

#: the fleet's settings as Locust options ``--barnstorm-NAME``, each also read from
#: ``BARNSTORM_NAME`` (the variable of ``simulate run`` it is handed to the fleet as).
FLEET_OPTIONS: tuple[tuple[str, type, str], ...] = (
    ("farms", int, "Farms in the device fleet (default 500)."),
    ("mqtt", str, "The devices' MQTT broker, mqtt://host:1883 (default: an embedded one)."),
    ("http", str, "An HTTP ingest URL for the devices, instead of MQTT."),
    ("speed", str, "Simulated seconds per real second (default 1)."),
    ("duration", str, "How long the fleet runs (default: until the test stops)."),
    ("qos", int, "MQTT QoS (default 1)."),
    ("seed", int, "The fleet's seed: the same seed, the same farms and devices."),
    ("device-types", str, "Only these device types (comma-separated)."),
    ("connection", str, "per-device or per-gateway MQTT connections."),
    ("topic-template", str, "MQTT topic template, e.g. farms/{farm_id}/{device_id}/{kind}."),
    ("connect-rate", str, "New device connections per second during the ramp."),
    ("client-id-prefix", str, "Start of every MQTT client id (default: the run's own)."),
    ("scenario", str, "A scenario file of events to play (outbreak, network outage ...)."),
)
#: Locust-level verdicts and reports, over the devices and the suite's users together.
VERDICT_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("junit", "BARNSTORM_LOCUST_JUNIT", "Write the SLA verdicts as JUnit XML to this file."),
    ("html", "BARNSTORM_LOCUST_HTML", "Write barnstorm's HTML page of the run to this file."),
    ("report", "BARNSTORM_LOCUST_REPORT", "Write barnstorm's JSON report of the run to this file."),
)


@events.init_command_line_parser.add_listener
def add_fleet_options(parser: Any) -> None:
    """The fleet's settings in ``locust --help``, the web UI and ``locust.conf``."""
    for name, kind, text in FLEET_OPTIONS:
        variable = "BARNSTORM_" + name.replace("-", "_").upper()
        parser.add_argument(f"--barnstorm-{name}", type=kind, env_var=variable, help=text)
    parser.add_argument(
        "--barnstorm-clean",
        action="store_true",
        env_var="BARNSTORM_CLEAN",
        help="No fleet imperfections (jitter, duplicates, spikes ...).",
    )
    parser.add_argument(
        "--barnstorm-sla",
        action="append",
        help='An SLA over devices and users together, e.g. "ingest.p95<250ms" (repeatable).',
        include_in_web_ui=False,
    )
    for name, variable, text in VERDICT_OPTIONS:
        parser.add_argument(
            f"--barnstorm-{name}", env_var=variable, help=text, include_in_web_ui=False
        )


def _option(environment: Environment, name: str) -> Any:
    options = environment.parsed_options
    return getattr(options, "barnstorm_" + name.replace("-", "_"), None) if options else None


def fleet_environment(environment: Environment) -> dict[str, str]:
    """The environment of a fleet child: this process's, with the ``--barnstorm-*`` options
    as the ``BARNSTORM_*`` variables ``simulate run`` reads."""
    env = os.environ.copy()
    for name, _, _ in (*FLEET_OPTIONS, ("clean", bool, "")):
        value = _option(environment, name)
        if value is None or value is False or value == "":
            continue
        env["BARNSTORM_" + name.replace("-", "_").upper()] = "1" if value is True else str(value)
    # The SLAs and reports are Locust's, over both kinds of load, not the fleet's alone.
    for name in ("BARNSTORM_SLA", "BARNSTORM_JUNIT", "BARNSTORM_HTML"):
        env.pop(name, None)
    return env


def verdict_setting(environment: Environment, name: str) -> str | None:
    """``--barnstorm-junit``, ``--barnstorm-html`` or ``--barnstorm-report`` (or their
    variables)."""
    value = _option(environment, name)
    if value:
        return str(value)
    variable = next(v for n, v, _ in VERDICT_OPTIONS if n == name)
    return os.environ.get(variable) or None


def sla_texts(environment: Environment) -> list[str]:
    """``--barnstorm-sla`` (repeatable), or ``BARNSTORM_LOCUST_SLAS`` (a JSON list)."""
    given = _option(environment, "sla")
    if given:
        return [str(text) for text in given]
    return [str(text) for text in json.loads(os.environ.get("BARNSTORM_LOCUST_SLAS") or "[]")]


@dataclass
class FleetStatus:
    """What one process's fleet is doing, as the web UI shows it."""

    shard: str = "-"
    state: str = "waiting"
    connected: int = 0
    messages: int = 0
    failures: int = 0
    #: messages devices kept and never sent (offline at the stop, buffer overflow): no
    #: request events, since they never reached the target.
    held: int = 0
    rate: float = 0.0  # messages per second over the last RATE_WINDOW
    #: the fleet process's own event-loop lag so far (ms): p50, p99, max.
    loop_lag_p50: float = 0.0
    loop_lag_p99: float = 0.0
    loop_lag_max: float = 0.0


#: bytes of the fleet's result stream read at once, and held by the pipe between the two
#: processes: a line carries half a second of results (megabytes at speed max), and a
#: 64 KiB pipe would hand it over in dozens of round trips between them.
_PIPE = 1 << 20


def _widen(pipe: Any) -> None:
    """Let ``pipe`` hold up to :data:`_PIPE` bytes where the system allows (Linux; elsewhere
    the pipe keeps its size)."""
    with contextlib.suppress(ImportError, AttributeError, OSError):
        import fcntl

        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE)


class FleetChild:
    """One device engine child process (a fleet shard) of this Locust process."""

    def __init__(self, environment: Environment, index: int, count: int) -> None:
        env = fleet_environment(environment)
        duration = env.get("BARNSTORM_DURATION", "3650d")  # until the test stops
        command = [sys.executable, "-m", "simulator", "run", "--stream-results", "--quiet"]
        command += ["--duration", duration, "--shard", f"{index}/{count}"]
        self.status = FleetStatus(shard=f"{index + 1} of {count}", state="running")
        self._window: list[tuple[float, int]] = []
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, bufsize=_PIPE
        )
        _widen(self.process.stdout)
        self.reader = gevent.spawn(self._read, environment)

    def _read(self, environment: Environment) -> None:
        for line in self.process.stdout:
            self.account(line, environment)
        self.process.wait()
        status = self.status
        status.rate, status.connected = 0.0, 0
        if self.process.returncode == 0:
            status.state = "finished"
        elif status.state == "stopping":
            status.state = "stopped"
        else:
            status.state = f"failed (exit {self.process.returncode})"
        runner = environment.runner
        if (
            isinstance(runner, LocalRunner)
            and environment.parsed_options is not None
            and environment.parsed_options.num_users == 0
            and environment.shape_class is None
            and self in CHILDREN
        ):
            runner.quit()  # devices only: the test ends with the fleet

    def account(self, line: bytes, environment: Environment) -> None:
        try:
            batch = orjson.loads(line)
        except orjson.JSONDecodeError:
            return
        fire = environment.events.request.fire
        transport = batch.get("transport", "MQTT")
        verb = "publish" if transport == "MQTT" else "ingest"
        names = [f"{verb} {device_type}" for device_type in batch.get("types", ())]
        results = batch.get("results") or {"type": [], "latency_ms": [], "bytes": [], "error": []}
        errors: list[str | None] = results["error"]
        for type_code, latency, size, error in zip(
            results["type"], results["latency_ms"], results["bytes"], errors, strict=True
        ):
            fire(
                request_type=transport,
                name=names[type_code],
                response_time=latency or 0.0,
                response_length=size,
                exception=RuntimeError(error) if error else None,
                context={},
            )
        if batch.get("timing"):
            SERVER_TIMINGS.merge(batch["timing"])  # the devices' HTTP ingest, as the target saw it
        status = self.status
        lag = batch.get("loop_lag_ms")
        if lag:
            status.loop_lag_p50, status.loop_lag_p99 = lag["p50"], lag["p99"]
            status.loop_lag_max = lag["max"]
        status.held += sum(int(n) for n in (batch.get("held") or {}).values())
        status.connected = int(batch.get("connected", status.connected))
        status.messages += len(errors)
        status.failures += len(errors) - errors.count(None)
        now = time.monotonic()
        self._window.append((now, status.messages))
        while len(self._window) > 2 and now - self._window[0][0] > RATE_WINDOW:
            self._window.pop(0)
        first_time, first_count = self._window[0]
        status.rate = (
            (status.messages - first_count) / (now - first_time) if now > first_time else 0.0
        )

    def stop(self) -> None:
        """Interrupt the fleet: it settles its books and flushes its last results."""
        if self.process.poll() is None:
            self.status.state = "stopping"
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.reader.join(timeout=10)


#: this process's fleet shards: one in a mixed run, one more per step in a capacity search.
CHILDREN: list[FleetChild] = []
#: whether test start starts the fleet (a capacity search starts shards step by step).
AUTO_FLEET = {"enabled": True}
#: on the master: each worker's last reported fleet status, by worker id.
WORKERS: dict[str, list[FleetStatus]] = {}


def _shard(environment: Environment) -> tuple[int, int]:
    if not isinstance(environment.runner, WorkerRunner):
        return 0, 1
    index = environment.runner.worker_index
    options = environment.parsed_options
    expected = options.expect_workers if options is not None else 1
    count = int(os.environ.get("BARNSTORM_WORKER_COUNT") or expected or 1)
    if index >= count:
        raise RuntimeError(
            f"barnstorm: worker index {index} but {count} workers expected: start the master "
            "with --expect-workers N (or set BARNSTORM_WORKER_COUNT) for N workers"
        )
    return index, count


def start_child(environment: Environment, index: int, count: int) -> FleetChild:
    child = FleetChild(environment, index, count)
    CHILDREN.append(child)
    return child


@events.test_start.add_listener
def start_fleet(environment: Environment, **_: Any) -> None:
    CHILDREN.clear()  # a new test in the web UI: the last test's shards have stopped
    if isinstance(environment.runner, MasterRunner) or not AUTO_FLEET["enabled"]:
        return  # the workers run the fleet; the master merges their stats
    start_child(environment, *_shard(environment))


@events.test_stop.add_listener
def stop_fleet(environment: Environment, **_: Any) -> None:
    for child in CHILDREN:
        child.stop()


@events.quitting.add_listener
def quit_fleet(environment: Environment, **_: Any) -> None:
    stop_fleet(environment)  # first: the fleet's last results count in the verdicts
    statuses = _fleet_statuses(environment)
    held = sum(status.held for status in statuses)
    if statuses and not any(status.messages or status.held for status in statuses):
        # The same rule as a run of the fleet alone: a run that sent nothing fails.
        print("barnstorm: the device fleet sent nothing during the test", file=sys.stderr)
        environment.process_exit_code = EXIT_FAILED
    if held:
        print(
            f"barnstorm: {held:,} device messages were never sent (their devices were offline "
            "when the test stopped, or their buffers overflowed); they are not counted as "
            "the target's failures",
            file=sys.stderr,
        )
    if not isinstance(environment.runner, WorkerRunner):
        verdicts = judge_slas(environment)
        if SAMPLER.rows or SAMPLER.wanted(environment):
            SAMPLER.write(environment, verdicts)


class Sampler:
    """Ingest beside dashboards over time, for the mixed run's HTML report
    (``--barnstorm-html``, as ``simulate mixed --html`` sets it): a row per interval."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.started = time.monotonic()
        self._last: tuple[float, Snapshot] | None = None
        self._greenlet: Any = None

    @staticmethod
    def wanted(environment: Environment) -> bool:
        return bool(verdict_setting(environment, "html") or verdict_setting(environment, "report"))

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
            "connected": sum(
                r["connected"] for r in fleet_rows(environment) if r["shard"] != "total"
            ),
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

    def write(self, environment: Environment, verdicts: list[Verdict]) -> None:
        path = verdict_setting(environment, "html")
        report = verdict_setting(environment, "report")
        if self._greenlet is not None:
            self._greenlet.kill()
            self.sample(environment)
        if not path and not report:
            return
        stats = environment.stats
        last = stats.total.last_request_timestamp or stats.total.start_time
        seconds = max(last - stats.total.start_time, 1e-9)
        backend = SERVER_TIMINGS.summary()
        requests: list[dict[str, Any]] = []
        for (method, name), counts in sorted(snapshot(stats).items(), key=lambda kv: kv[0][1]):
            measure = window_measures({}, {(method, name): counts}, seconds)[name]
            requests.append(
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
                    "backend": backend.get(name),
                }
            )
        config = {
            key: "***"
            if any(word in key for word in ("PASSWORD", "TOKEN", "SECRET"))
            else re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", value)  # a password in a URL
            for key, value in sorted(fleet_environment(environment).items())
            if key.startswith("BARNSTORM_")
        }
        data = {
            "rows": self.rows,
            "fleet_loop_lag_ms": [
                {
                    "shard": s.shard,
                    "p50": s.loop_lag_p50,
                    "p99": s.loop_lag_p99,
                    "max": s.loop_lag_max,
                }
                for s in _fleet_statuses(environment)
            ],
            "requests": requests,
            "sla": [verdict.as_dict() for verdict in verdicts],
            "seconds": seconds,
            "host": environment.host,
            "run_id": os.environ.get("BARNSTORM_RUN_ID"),
            "config": config,
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


@events.report_to_master.add_listener
def report_fleet(client_id: str, data: dict[str, Any], **_: Any) -> None:
    data[REPORT_KEY] = [asdict(child.status) for child in CHILDREN]
    data[TIMING_KEY] = SERVER_TIMINGS.take()


@events.worker_report.add_listener
def collect_fleet(client_id: str, data: dict[str, Any], **_: Any) -> None:
    if REPORT_KEY in data:
        WORKERS[client_id] = [FleetStatus(**status) for status in data[REPORT_KEY]]
    if TIMING_KEY in data:
        SERVER_TIMINGS.merge(data[TIMING_KEY])


#: what the backend said about its time (Server-Timing), per request name; on the master,
#: the workers' merged.
SERVER_TIMINGS = ServerTimings()
TIMING_KEY = "barnstorm_server_timing"


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
    headers = getattr(response, "headers", None)
    if not headers:
        return
    header = headers.get("Server-Timing")
    if header:
        SERVER_TIMINGS.observe(name, header, response_length or 0, time.time())


@events.test_start.add_listener
def reset_server_timing(environment: Environment, **_: Any) -> None:
    SERVER_TIMINGS.by_name.clear()


def _fleet_statuses(environment: Environment) -> list[FleetStatus]:
    """Every fleet shard's status: the workers' on the master, this process's elsewhere."""
    if isinstance(environment.runner, MasterRunner):
        return [status for key in sorted(WORKERS) for status in WORKERS[key]]
    return [child.status for child in CHILDREN]


def fleet_rows(environment: Environment) -> list[dict[str, Any]]:
    """The web UI's table: one row per fleet shard and, with several, a total."""
    statuses = _fleet_statuses(environment)
    rows: list[dict[str, Any]] = [
        {
            "shard": s.shard,
            "state": s.state,
            "connected": s.connected,
            "rate": round(s.rate, 1),
            "messages": s.messages,
            "failures": s.failures,
            "held": s.held,
        }
        for s in statuses
    ]
    if len(rows) > 1:
        rows.append(
            {
                "shard": "total",
                "state": "",
                **{
                    key: round(sum(row[key] for row in rows), 1)
                    for key in ("connected", "rate", "messages", "failures", "held")
                },
            }
        )
    return rows


@events.init.add_listener
def check_slas(environment: Environment, **_: Any) -> None:
    """A bad SLA is bad input: one line and exit 2, before the test starts."""
    try:
        parse_slas(sla_texts(environment), "--barnstorm-sla")
    except ConfigError as exc:
        print(f"barnstorm: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


@events.init.add_listener
def add_fleet_tab(environment: Environment, **_: Any) -> None:
    web_ui = environment.web_ui
    if web_ui is None or web_ui.app is None:
        return
    app = web_ui.app
    from flask import request

    web_ui.template_args["extended_tabs"] = [{"title": "Device fleet", "key": TAB}]
    web_ui.template_args["extended_tables"] = [
        {
            "key": TAB,
            "structure": [
                {"key": "shard", "title": "Fleet shard"},
                {"key": "state", "title": "State"},
                {"key": "connected", "title": "Connected devices"},
                {"key": "rate", "title": "Messages/s"},
                {"key": "messages", "title": "Messages"},
                {"key": "failures", "title": "Failures"},
                {"key": "held", "title": "Never sent (held on devices)"},
            ],
        }
    ]

    @app.after_request
    def add_fleet_stats(response: Any) -> Any:
        if request.path == "/stats/requests" and response.is_json:
            stats = response.get_json()
            stats["extended_stats"] = [{"key": TAB, "data": fleet_rows(environment)}]
            response.set_data(json.dumps(stats))
        return response

    @app.route("/barnstorm/fleet")
    def fleet_status() -> Any:
        return {"fleet": fleet_rows(environment)}
