"""The OTLP/HTTP trace receiver (``--otlp-receiver HOST:PORT``): a process of its own beside
the run, so that reading the backend's spans never takes time from the load.

The backend's exporter (or the team's collector, fanning out) sends to
``http://HOST:PORT/v1/traces``; the receiver folds the spans of the run's traces
(:mod:`simulator.traces.fold`) and answers ``GET /barnstorm/summary`` with the figures so
far (``?final=1`` folds the traces still open). The run starts it with :func:`start`, and at
its end :meth:`Receiver.finish` waits until the backend's last batch is in (no span for a
few seconds: exporters batch for five by default), takes the figures and stops it.

    python -m simulator.traces.receiver --listen 127.0.0.1:4318 --run-id 1f3a9c2e
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

from simulator.errors import ConfigError
from simulator.traces.context import FlowKey, tag
from simulator.traces.fold import TraceFolder
from simulator.traces.spans import Span, SpansRefused, read_body

#: the largest export request taken (an exporter's batch is far smaller).
MAX_BODY = 64 * 1024 * 1024
#: after the load, how long without a span means the backend's last batch is in, and the
#: longest wait for it.
QUIET_S = 6.0
MOST_S = 30.0


def parse_listen(text: str, flag: str = "--otlp-receiver") -> tuple[str, int]:
    """``HOST:PORT`` to listen on, or one line saying what was expected."""
    host, _, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(flag, f'expected HOST:PORT such as 127.0.0.1:4318, got "{text}"')
    return host, int(port)


class _Service:
    def __init__(self, folder: TraceFolder, joins: IO[str] | None) -> None:
        self.folder = folder
        self.lock = threading.Lock()
        self.joins = joins
        self.last_span = 0.0
        self.requests = 0
        self.refused = 0

    def take(self, spans: list[Span]) -> None:
        with self.lock:
            self.folder.add(spans)
            self.requests += 1
            if spans:
                self.last_span = time.monotonic()

    def summary(self, final: bool) -> dict[str, Any]:
        with self.lock:
            self.folder.settle(everything=final)
            data = self.folder.summary()
            data["export_requests"] = self.requests
            data["cpu_s"] = round(time.process_time(), 3)  # what receiving cost
            data["refused_requests"] = self.refused
            data["last_span_age_s"] = (
                round(time.monotonic() - self.last_span, 3) if self.last_span else None
            )
            if self.joins is not None:
                self.joins.flush()
            return data


def _handler(service: _Service) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            if self.path.split("?")[0] != "/v1/traces":
                return self._answer(404, "text/plain", b"only /v1/traces is taken here\n")
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                return self._answer(411, "text/plain", b"Content-Length required\n")
            if int(length) > MAX_BODY:
                return self._answer(413, "text/plain", b"export request too large\n")
            body = self.rfile.read(int(length))
            content_type = self.headers.get("Content-Type", "")
            try:
                spans = read_body(
                    body, content_type, self.headers.get("Content-Encoding", ""), MAX_BODY
                )
            except SpansRefused as exc:
                with service.lock:
                    service.refused += 1
                return self._answer(400, "text/plain", f"{exc}\n".encode())
            service.take(spans)
            if content_type.startswith("application/json"):
                return self._answer(200, "application/json", b"{}")
            # an empty ExportTraceServiceResponse: every span accepted
            return self._answer(200, "application/x-protobuf", b"")

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            if path != "/barnstorm/summary":
                return self._answer(404, "text/plain", b"not found\n")
            data = service.summary(final="final=1" in query.split("&"))
            self._answer(200, "application/json", json.dumps(data).encode())

        def _answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def serve(listen: str, run_id: str, joins: Path | None, out: IO[str]) -> None:
    """Receive until SIGTERM or SIGINT; print ``listening HOST:PORT`` once bound."""
    host, port = parse_listen(listen)
    joins_file = joins.open("a", encoding="utf-8") if joins else None

    def joined(trace_id: bytes, key: FlowKey, entry: Span | None) -> None:
        if joins_file is not None:
            path = entry.path if entry else None
            joins_file.write(f"{trace_id.hex()} {key.flow} {key.name} {path or '-'}\n")

    folder = TraceFolder(tag(run_id, 2), on_fold=joined)
    service = _Service(folder, joins_file)
    server = ThreadingHTTPServer((host, port), _handler(service))
    server.daemon_threads = True
    stop = threading.Event()

    def settle() -> None:
        while not stop.wait(0.5):
            with service.lock:
                folder.settle()

    threading.Thread(target=settle, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    bound_host, bound_port = server.server_address[:2]
    if isinstance(bound_host, bytes):
        bound_host = bound_host.decode()
    print(f"listening {bound_host}:{bound_port}", file=out, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
        if joins_file is not None:
            joins_file.close()


class Receiver:
    """A running receiver process, from the run's side."""

    def __init__(self, process: subprocess.Popen[str], address: str) -> None:
        self.process = process
        self.address = address

    def summary(self, final: bool = False) -> dict[str, Any]:
        url = f"http://{self.address}/barnstorm/summary" + ("?final=1" if final else "")
        with urllib.request.urlopen(url, timeout=30) as answer:
            data: dict[str, Any] = json.loads(answer.read())
        return data

    def finish(self, quiet_s: float = QUIET_S, most_s: float = MOST_S) -> dict[str, Any]:
        """Wait until no span came for ``quiet_s`` (at most ``most_s``), then the final
        figures; the process is stopped."""
        deadline = time.monotonic() + most_s
        started = time.monotonic()
        try:
            while time.monotonic() < deadline:
                age = self.summary().get("last_span_age_s")
                waited = time.monotonic() - started
                if (age if age is not None else waited) >= quiet_s:
                    break
                time.sleep(0.25)
            return self.summary(final=True)
        finally:
            self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start(listen: str, run_id: str, joins: Path | None = None) -> Receiver:
    """Start a receiver on ``listen`` (HOST:PORT) for the run ``run_id``; a port it cannot
    listen on is a :class:`ConfigError` naming ``--otlp-receiver``."""
    parse_listen(listen)
    command = [sys.executable, "-m", "simulator.traces.receiver", "--listen", listen]
    command += ["--run-id", run_id]
    if joins is not None:
        command += ["--joins", str(joins)]
    errors = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - the process's stderr: never a pipe that fills
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("listening "):
        process.wait(10)
        errors.seek(0)
        error = errors.read().strip().splitlines()
        why = error[-1] if error else "it exited"
        raise ConfigError("--otlp-receiver", f"cannot receive traces on {listen}: {why}")
    return Receiver(process, line.removeprefix("listening "))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--joins", type=Path)
    args = parser.parse_args(argv)
    try:
        serve(args.listen, args.run_id, args.joins, sys.stdout)
    except OSError as exc:
        print(f"barnstorm: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(2)
    except ConfigError as exc:
        print(f"barnstorm: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        main()
