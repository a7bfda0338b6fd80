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
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

import gevent
import orjson
from gevent import subprocess
from locust import events
from locust.env import Environment
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

from simulator.errors import ConfigError
from simulator.exitcodes import EXIT_FAILED, EXIT_USAGE
from simulator.locust.run_report import SAMPLER, SERVER_TIMINGS, judge_failures, judge_slas
from simulator.locust.settings import fleet_environment, sla_texts
from simulator.metrics.sla import parse_slas
from simulator.units import until_stopped

REPORT_KEY = "barnstorm_fleet"
TAB = "barnstorm-fleet"
RATE_WINDOW = 5.0  # seconds over which the message rate is measured


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
        duration = env.get("BARNSTORM_DURATION") or until_stopped(env.get("BARNSTORM_SPEED"))
        command = [sys.executable, "-m", "simulator", "run", "--stream-results", "--quiet"]
        command += ["--duration", duration, "--shard", f"{index}/{count}"]
        self.status = FleetStatus(shard=f"{index + 1} of {count}", state="running")
        self._window: list[tuple[float, int]] = []
        # Its errors, kept for the line that says why it failed (a pipe could fill up).
        self.errors = tempfile.TemporaryFile("w+b")  # noqa: SIM115 - closed when it exits
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self.errors, env=env, bufsize=_PIPE
        )
        _widen(self.process.stdout)
        self.reader = gevent.spawn(self._read, environment)

    def why(self) -> str:
        """The last line the fleet process wrote to its stderr (its one-line error)."""
        self.errors.seek(0)
        lines = self.errors.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "it said nothing"

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
            print(
                f"barnstorm: the device fleet ({status.shard}) {status.state}: {self.why()}",
                file=sys.stderr,
            )
        self.errors.close()
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
        judge_failures(environment)
        if SAMPLER.rows or SAMPLER.wanted(environment):
            loop_lags = [
                {
                    "shard": s.shard,
                    "p50": s.loop_lag_p50,
                    "p99": s.loop_lag_p99,
                    "max": s.loop_lag_max,
                }
                for s in statuses
            ]
            SAMPLER.write(environment, verdicts, loop_lags)


@events.report_to_master.add_listener
def report_fleet(client_id: str, data: dict[str, Any], **_: Any) -> None:
    data[REPORT_KEY] = [asdict(child.status) for child in CHILDREN]


@events.worker_report.add_listener
def collect_fleet(client_id: str, data: dict[str, Any], **_: Any) -> None:
    if REPORT_KEY in data:
        WORKERS[client_id] = [FleetStatus(**status) for status in data[REPORT_KEY]]


def _fleet_statuses(environment: Environment) -> list[FleetStatus]:
    """Every fleet shard's status: the workers' on the master, this process's elsewhere."""
    if isinstance(environment.runner, MasterRunner):
        return [status for key in sorted(WORKERS) for status in WORKERS[key]]
    return [child.status for child in CHILDREN]


def connected_devices(environment: Environment) -> int:
    return sum(status.connected for status in _fleet_statuses(environment))


SAMPLER.connected = connected_devices


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
