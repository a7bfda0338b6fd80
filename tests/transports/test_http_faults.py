"""HTTP ingest when the target pushes back or goes quiet: Retry-After honoured, TLS and
mutual TLS verified, and a target that stops answering does not stall the fleet."""

from __future__ import annotations

import json
import ssl
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from simulator.exitcodes import EXIT_FAILED, EXIT_FAILURES
from simulator.transports.http import retry_after
from tests.helpers import simulate
from tests.transports.test_tls import make_certificates

#: a few messages: one farm's climate nodes for ten simulated minutes, as fast as possible
FEW = ("--farms", "1", "--device-types", "climate_node", "--clean", "--quiet")
FEW_TIMING = ("--speed", "max", "--duration", "10m", "--start", "2026-01-01")


class _Ingest(BaseHTTPRequestHandler):
    """Accepts POST /ingest; with ``server.push_back`` answers the first ``server.pushes``
    tries of each body with that status and ``Retry-After: server.retry_after``."""

    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        with self.server.lock:
            tries = self.server.tries[body]
            self.server.tries[body] += 1
            self.server.requests += 1
        if self.server.push_back and tries < self.server.pushes:
            self.send_response(self.server.push_back)
            self.send_header("Retry-After", self.server.retry_after)
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, push_back: int | None = None, retry_after: str = "1", pushes: int = 1
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Ingest)
        self.push_back = push_back
        self.retry_after = retry_after
        self.pushes = pushes
        self.tries: Counter[bytes] = Counter()
        self.requests = 0
        self.lock = threading.Lock()


@contextmanager
def _serving(server: _Server) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _run(*args: str) -> tuple[int, str, dict[str, Any]]:
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        result = simulate(*args, "--report", str(report))
        data = json.loads(report.read_text()) if report.exists() else {}
    return result.returncode, result.stderr, data


def test_retry_after_parses_seconds_and_http_dates() -> None:
    """Retry-After is read as delay-seconds or as an HTTP date; anything else is ignored."""
    assert retry_after("3") == 3.0
    assert retry_after("Wed, 21 Oct 2026 07:28:00 GMT", now=1792567670.0) == 10.0
    assert retry_after("soon") is None
    assert retry_after(None) is None


@pytest.mark.slow
@pytest.mark.parametrize("status", [429, 503])
def test_a_push_back_with_retry_after_is_retried_after_the_wait_and_counted(
    status: int,
) -> None:
    """A target that answers 429 (or 503) with Retry-After: 1 to every first try: each
    message is sent again a second later and acknowledged; the report counts one retry per
    message and the latency includes the wait."""
    server = _Server(push_back=status)
    with _serving(server) as address:
        code, stderr, report = _run(*FEW, *FEW_TIMING, "--http", f"http://{address}/ingest")
    totals = report["totals"]
    assert code == 0, stderr
    assert totals["acknowledged"] == totals["sent"] > 0
    assert totals["retried"] == {f"http_{status}": totals["sent"]}
    assert totals["latency_ms"]["p50"] >= 1000
    assert server.requests == 2 * totals["sent"]


@pytest.mark.slow
def test_retries_stop_after_three() -> None:
    """A target that always answers 429 with Retry-After: 0: each message is tried once and
    retried three times, then failed as http_429; nothing got through, so the run fails."""
    server = _Server(push_back=429, retry_after="0", pushes=1_000)
    with _serving(server) as address:
        code, stderr, report = _run(*FEW, *FEW_TIMING, "--http", f"http://{address}/ingest")
    totals = report["totals"]
    assert code == EXIT_FAILED, stderr
    assert totals["failed"] == totals["sent"] > 0
    assert totals["errors"] == {"http_429": totals["sent"]}
    assert totals["retried"] == {"http_429": 3 * totals["sent"]}
    assert server.requests == 4 * totals["sent"]


@pytest.mark.slow
def test_a_wait_beyond_sixty_seconds_is_not_waited_for() -> None:
    """A 503 asking for two minutes is not waited for (the cap is 60 s): the message fails
    at its first try as http_503, with no retry."""
    server = _Server(push_back=503, retry_after="120")
    with _serving(server) as address:
        code, stderr, report = _run(*FEW, *FEW_TIMING, "--http", f"http://{address}/ingest")
    totals = report["totals"]
    assert code == EXIT_FAILED, stderr
    assert totals["errors"] == {"http_503": totals["sent"]}
    assert totals["retried"] == {}
    assert server.requests == totals["sent"] > 0


@contextmanager
def _https(folder: Path, *, client_certificate: bool) -> Iterator[str]:
    make_certificates(folder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "server.pem", folder / "server.key")
    if client_certificate:
        context.load_verify_locations(folder / "ca.pem")
        context.verify_mode = ssl.CERT_REQUIRED
    server = _Server()
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with _serving(server) as address:
        yield f"https://{address}/ingest"


@pytest.mark.slow
def test_https_targets_are_verified_and_mutual_tls_presents_the_client_certificate(
    tmp_path: Path,
) -> None:
    """An https:// target signed by the test's own CA: refused (every message failed as
    "tls", and the run fails with a line that says what to check) without --ca-file,
    acknowledged with it; a target that requires a client certificate takes the messages
    only with --cert-file and --key-file."""
    ca = ("--ca-file", str(tmp_path / "ca.pem"))
    client = (
        "--cert-file",
        str(tmp_path / "client.pem"),
        "--key-file",
        str(tmp_path / "client.key"),
    )
    with _https(tmp_path, client_certificate=False) as url:
        code, stderr, untrusted = _run(*FEW, *FEW_TIMING, "--http", url, "--allow-loss")
        assert code == EXIT_FAILED, stderr
        assert "was accepted" in stderr, stderr
        assert "--ca-file" in stderr
        assert untrusted["totals"]["acknowledged"] == 0
        assert set(untrusted["totals"]["errors"]) == {"tls"}
        code, stderr, trusted = _run(*FEW, *FEW_TIMING, "--http", url, *ca)
        assert code == 0, stderr
        assert trusted["totals"]["acknowledged"] == trusted["totals"]["sent"] > 0
    with _https(tmp_path, client_certificate=True) as url:
        code, stderr, anonymous = _run(*FEW, *FEW_TIMING, "--http", url, *ca, "--allow-loss")
        assert code == EXIT_FAILED, stderr
        assert anonymous["totals"]["acknowledged"] == 0
        code, stderr, mutual = _run(*FEW, *FEW_TIMING, "--http", url, *ca, *client)
        assert code == 0, stderr
        assert mutual["totals"]["acknowledged"] == mutual["totals"]["sent"] > 0


@pytest.mark.slow
def test_a_target_that_stops_answering_does_not_stall_the_fleet(backend: Any) -> None:
    """The reference backend goes silent (a blackhole through the fault proxy) for a third
    of a real-time run: requests in that window time out after --http-timeout and are
    counted as "timeout"; the schedule keeps going, so the run sends as many messages as
    the same fleet written to a file, and what is sent after the silence is acknowledged.
    A third of the messages failed, far above the default --max-failed 1 %: exit 5."""
    url = backend("--farms", "1")
    timing = ("--duration", "6m", "--start", "2026-01-01")
    with tempfile.TemporaryDirectory() as folder:
        scenario = Path(folder) / "silence.toml"
        scenario.write_text(
            '[[events]]\ntype = "network_fault"\nfault = "blackhole"\nat = "2m"\nduration = "2m"\n'
        )
        code, stderr, report = _run(
            *FEW,
            *timing,
            *("--speed", "60", "--http", f"{url}/ingest", "--http-timeout", "1s"),
            *("--scenario", str(scenario), "--allow-loss", "--connect-rate", "0"),
        )
        _, _, expected = _run(
            *FEW, *timing, "--speed", "max", "--output", str(Path(folder) / "same.jsonl")
        )
    totals = report["totals"]
    assert code == EXIT_FAILURES, stderr
    assert report["max_failed"] == {
        "failed": totals["failed"],
        "sent": totals["sent"],
        "share": round(totals["failed"] / totals["sent"], 6),
        "limit": 0.01,
        "held": False,
    }
    assert totals["sent"] == expected["totals"]["sent"]
    assert totals["errors"].get("timeout", 0) > 0
    assert totals["acknowledged"] > 0
    assert totals["acknowledged"] + totals["failed"] == totals["sent"]
    assert set(totals["errors"]) <= {"timeout"}
