"""The backend's own traces joined to barnstorm's requests, end to end: the receiver as a
process, the reference backend exporting with the real OpenTelemetry SDK, a mixed run
that finds the room chart's N+1 from spans alone (no Server-Timing), joins checked against
the backend's access log, and counts that add up."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

from simulator.backend.broker import free_port
from simulator.errors import ConfigError
from simulator.traces.context import flow_key
from simulator.traces.receiver import start
from simulator.traces.spans import Span, read_body
from tests.conftest import Backends
from tests.helpers import ROOT, seed_history
from tests.traces.otlp import otlp_json, protobuf, request_trace, trace_id

pytestmark = pytest.mark.slow  # processes: the receiver, backends, Locust

ROOM = "GET /api/farms/[id]/rooms/[id] (7 days)"
#: the room chart and the farm list, as a team's recorded map would name them.
ROOM_MAP = f"""
[login]
url = "/api/login"
body = '{{"username": "farmer", "password": "barnstorm"}}'

[views.farm_list]
think = [0.05, 0.2]
[[views.farm_list.requests]]
name = "GET /api/farms"
url = "/api/farms"

[views.room_detail]
think = [0.05, 0.2]
[[views.room_detail.requests]]
name = "{ROOM}"
url = "/api/farms/{{farm_id}}/rooms/{{room_id}}?from={{from}}&to={{to}}"
"""


def _post(url: str, body: bytes, content_type: str, encoding: str = "") -> int:
    headers = {"Content-Type": content_type}
    if encoding:
        headers["Content-Encoding"] = encoding
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_the_receiver_takes_protobuf_json_and_gzip_refuses_garbage_and_counts_all() -> None:
    """The receiver process answers 200 to protobuf, gzip'd protobuf and JSON exports, 400
    to a body that is none (counted as refused), 404 elsewhere; its final figures count
    every span it took as joined or unjoined; a taken port is one line naming the flag."""
    receiver = start("127.0.0.1:0", "run-receiver")
    try:
        url = f"http://{receiver.address}/v1/traces"
        ours = request_trace(
            trace_id("run-receiver", "farm_list", "GET /api/farms"), statements=["SELECT 1"]
        )
        other = request_trace(trace_id("another", "farm_list", "GET /api/farms"))
        assert _post(url, protobuf(ours), "application/x-protobuf") == 200
        again = request_trace(
            trace_id("run-receiver", "farm_list", "GET /api/farms"), statements=["SELECT 1"]
        )
        assert _post(url, gzip.compress(protobuf(again)), "application/x-protobuf", "gzip") == 200
        assert _post(url, otlp_json(other), "application/json") == 200
        assert _post(url, b"\xffgarbage", "application/x-protobuf") == 400
        assert _post(f"http://{receiver.address}/v1/metrics", b"", "application/json") == 404
        summary = receiver.finish(quiet_s=0.5)
        assert summary["spans"] == {"received": 5, "joined": 4, "unjoined": 1}
        assert summary["refused_requests"] == 1
        assert summary["export_requests"] == 3
        (flow,) = summary["flows"]
        assert (flow["flow_tag"], flow["name_tag"]) == (
            flow_key("farm_list", "GET /api/farms").flow,
            flow_key("farm_list", "GET /api/farms").name,
        )
        assert flow["traces"] == 2
    finally:
        receiver.stop()
    taken = start("127.0.0.1:0", "run-a")
    try:
        with pytest.raises(ConfigError, match="--otlp-receiver: cannot receive traces"):
            start(taken.address, "run-b")
    finally:
        taken.stop()


def test_a_mixed_run_finds_the_room_charts_n_plus_one_from_spans_alone(
    tmp_path: Path, backend: Backends
) -> None:
    """``simulate serve --slow --otlp URL --no-server-timing`` over a month of history and a
    ``simulate mixed --otlp-receiver`` on two Locust workers: the report names the room
    chart's N+1 from the spans, with its repeated statement, and its HTML page shows it
    before the verdicts;
    every span is joined or counted as unjoined, and every joined trace is the request
    the access log saw with that trace id (same request name, same path)."""
    port = free_port()
    access_log = tmp_path / "access.jsonl"
    url = backend(
        *("--farms", "2", "--slow", "--no-server-timing"),
        *("--otlp", f"http://127.0.0.1:{port}", "--access-log", str(access_log)),
    )
    seed_history(f"{url}/ingest", farms=2, days=30, batch=200)
    access_log.write_text("")  # the seeding's requests are not the run's
    (tmp_path / "rooms.toml").write_text(ROOM_MAP)
    report, html, joins = tmp_path / "r.json", tmp_path / "r.html", tmp_path / "joins.txt"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "simulator", "mixed", "--farms", "2", "--users", "4"),
            *("--spawn-rate", "4", "--run-time", "20s", "--speed", "60"),
            *("--host", url, "--http", f"{url}/ingest"),
            *("--otlp-receiver", f"127.0.0.1:{port}", "--report", str(report)),
            *("--html", str(html), "--processes", "2"),  # Locust's workers; the master receives
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "BARNSTORM_DASHBOARD_MAP": str(tmp_path / "rooms.toml"),
            "BARNSTORM_OTLP_JOINS": str(joins),
            "BARNSTORM_RUN_ID": f"traces-{os.getpid()}",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(report.read_text())
    traces = data["traces"]
    spans = traces["spans"]
    assert spans["received"] == spans["joined"] + spans["unjoined"]
    assert spans["joined"] > 0
    found = next(f for f in data["n_plus_one"] if f["from"] == "spans")
    assert found["name"] == ROOM
    assert re.search(
        r"SELECT device_id, kind, ts, payload FROM messages WHERE device_id = \?",
        found["statement"],
    ), found
    room = next(r for r in data["requests"] if r["name"] == ROOM)
    assert room["backend"] is None  # no Server-Timing: the spans alone told it
    assert room["traces"]["db_spans_per_request"] > 20
    farms = next(r for r in data["requests"] if r["name"] == "GET /api/farms")
    assert farms["traces"]["db_spans_per_request"] < 5
    assert f"N+1 in {ROOM}" in done.stderr
    page = html.read_text()
    assert page.index("N+1 in GET /api/farms/[id]/rooms/[id]") < page.index("<h2>Verdicts</h2>")
    # Every join against the access log: the trace id the request carried, its name in the
    # baggage, its path; none joined to another request's flow.
    seen = {}
    for line in access_log.read_text().splitlines():
        request = json.loads(line)
        parent = request.get("traceparent")
        if parent:
            baggage = dict(item.split("=", 1) for item in request["baggage"].split(","))
            name = baggage["barnstorm.request"]
            seen[parent.split("-")[1]] = (baggage["barnstorm.flow"], name, request["path"])
    joined = joins.read_text().splitlines()
    assert len(joined) == sum(f["traces"] for f in traces["flows"])
    for line in joined:
        trace, flow_tag, name_tag, path = line.split(" ", 3)
        flow, name, logged_path = seen[trace]
        key = flow_key(unquote(flow), unquote(name))
        assert (flow_tag, name_tag) == (key.flow, key.name), line
        assert path == logged_path, line


class Collector:
    """A stand-in for a team's OTLP collector: it keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                spans = read_body(body, self.headers.get("Content-Type", ""), "", 1 << 26)
                collector.spans.extend(spans)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_barnstorms_client_spans_meet_the_backends_in_one_trace(
    tmp_path: Path, backend: Backends
) -> None:
    """--otlp-export sends a client span per request (simulate run's HTTP ingest, simulate
    mixed's dashboard requests) to the team's collector, where the backend's spans of the
    same trace arrive too: every request's client span is the parent of the backend's
    server span in one trace."""
    collector = Collector()
    try:
        url = backend("--farms", "2", "--otlp", collector.url)
        report = tmp_path / "run.json"
        done = subprocess.run(
            [
                *(sys.executable, "-m", "simulator", "--farms", "2", "--http", f"{url}/ingest"),
                *("--speed", "600", "--duration", "20m", "--quiet", "--report", str(report)),
                *("--otlp-export", collector.url),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        data = json.loads(report.read_text())
        sent = data["totals"]["sent"]
        assert data["client_spans"]["exported"] == sent
        assert data["client_spans"]["failed"] == 0
        assert "client spans to" in done.stdout
        mixed = subprocess.run(
            [
                *(sys.executable, "-m", "simulator", "mixed", "--farms", "1", "--users", "2"),
                *("--spawn-rate", "2", "--run-time", "8s", "--speed", "60"),
                *("--host", url, "--http", f"{url}/ingest", "--otlp-export", collector.url),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert mixed.returncode == 0, mixed.stderr[-3000:]

        def seen() -> tuple[list[Span], dict[bytes, bytes]]:
            spans = list(collector.spans)
            clients = [s for s in spans if s.service == "barnstorm"]
            return clients, {s.parent_id: s.trace_id for s in spans if s.kind == 2}

        deadline = time.monotonic() + 60  # the backend's exporter batches every 5 s
        while True:
            clients, parents = seen()
            if len(clients) > sent and all(c.span_id in parents for c in clients):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        collector.server.shutdown()
    assert all(parents.get(c.span_id) == c.trace_id for c in clients)  # one trace, two halves
    names = {c.name for c in clients}
    assert {"POST /api/login", "ingest gateway"} <= names, names  # Locust's and the fleet's
    assert sum(1 for c in clients if c.name.startswith("ingest ")) >= sent


def test_mqtt5_publishes_carry_their_trace_to_the_backends_consumer(
    tmp_path: Path, backend: Backends, mosquitto: str, topic_root: str
) -> None:
    """``simulate run --mqtt-version 5 --trace-mqtt --otlp-receiver``: the sampled
    publishes carry a traceparent user property, the reference backend's consumer span
    continues each one's trace, and the run's report joins them to ``publish <type>``;
    with --otlp-export barnstorm's own span of each publish goes into the same trace;
    under 3.1.1 --trace-mqtt is refused before anything is sent, unless --trace-envelope
    puts the traceparent in a payload field, which the backend continues from."""
    port = free_port()
    backend(
        *("--farms", "2", "--mqtt", mosquitto, "--topic", f"{topic_root}/#"),
        *("--otlp", f"http://127.0.0.1:{port}", "--trace-envelope", "traceparent"),
    )
    report = tmp_path / "run.json"
    common = (
        *("--farms", "2", "--mqtt", mosquitto, "--speed", "600", "--duration", "20m"),
        *("--topic-template", f"{topic_root}/{{device_id}}/{{kind}}", "--quiet"),
        *("--client-id-prefix", f"tr{os.getpid()}-", "--trace-mqtt"),
    )
    result = subprocess.run(
        [
            *(sys.executable, "-m", "simulator", *common, "--mqtt-version", "5"),
            *("--trace-sample", "100%", "--otlp-receiver", f"127.0.0.1:{port}"),
            *("--otlp-export", f"http://127.0.0.1:{port}", "--report", str(report)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(report.read_text())
    traces = data["traces"]
    flows = {f["name"]: f for f in traces["flows"]}
    sent = {f"publish {name}": c["sent"] for name, c in data["by_device_type"].items()}
    assert set(flows) == set(sent), flows.keys()
    for name, flow in flows.items():
        assert flow["flow"] == "publish"
        assert flow["traces"] == sent[name], (name, flow, sent)  # every publish sampled
        assert flow["db_spans_per_request"] >= 1  # the consumer's insert, in its trace
    assert traces["spans"]["received"] == traces["spans"]["joined"] + traces["spans"]["unjoined"]
    # barnstorm's own span of each publish (to its PUBACK) went too, into the same traces
    assert data["client_spans"]["exported"] == sum(sent.values())
    assert data["client_spans"]["failed"] == 0
    assert traces["traces_without_entry"] == 0
    refused = subprocess.run(
        [
            *(sys.executable, "-m", "simulator", *common, "--mqtt-version", "3.1.1"),
            *("--trace-sample", "10%"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "--trace-mqtt" in refused.stderr
    assert "3.1.1" in refused.stderr
    # Asked for, 3.1.1 publishes carry it in a payload field the backend reads instead.
    enveloped = tmp_path / "envelope.json"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "simulator", *common, "--mqtt-version", "3.1.1"),
            *("--trace-sample", "100%", "--trace-envelope", "traceparent"),
            *("--otlp-receiver", f"127.0.0.1:{port}", "--report", str(enveloped)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(enveloped.read_text())
    sent = {f"publish {name}": c["sent"] for name, c in data["by_device_type"].items()}
    flows = {f["name"]: f["traces"] for f in data["traces"]["flows"]}
    assert flows == sent
