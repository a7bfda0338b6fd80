"""``--prometheus 127.0.0.1:9464``: the simulator's metrics for Prometheus while a run lasts.

A small asyncio HTTP server (no dependency) answering ``GET /metrics`` in Prometheus' text
format, so the simulator's own view can be graphed beside the backend's::

    barnstorm_messages_total{device_type="cough_monitor",outcome="acknowledged"} 1200
    barnstorm_messages_in_flight{device_type="cough_monitor"} 3
    barnstorm_latency_seconds{device_type="cough_monitor",quantile="0.95"} 0.0082
    barnstorm_connected_devices 1024
    barnstorm_process_resident_memory_bytes 1.0e8

It binds to 127.0.0.1 unless given another host (``0.0.0.0:9464`` to be scraped from
elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType

from simulator.errors import ConfigError
from simulator.metrics.metrics import Metrics
from simulator.metrics.timeseries import rss_mb

OUTCOMES = ("sent", "acknowledged", "unconfirmed", "failed", "dropped")
QUANTILES = (0.5, 0.95, 0.99)


def parse_listen(text: str) -> tuple[str, int]:
    """``:9464`` or ``host:9464`` -> (host, port); the host defaults to 127.0.0.1."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("--prometheus", f'expected [host]:port such as ":9464", got "{text}"')
    return host.strip("[]") or "127.0.0.1", int(port)


def exposition(metrics: Metrics, type_names: tuple[str, ...]) -> str:
    """The metrics in Prometheus' text exposition format."""
    lines = [
        "# HELP barnstorm_messages_total Messages by device type and outcome.",
        "# TYPE barnstorm_messages_total counter",
    ]
    for name, counts in zip(type_names, metrics.by_type, strict=True):
        for outcome in OUTCOMES:
            value = getattr(counts, outcome)
            lines.append(
                f'barnstorm_messages_total{{device_type="{name}",outcome="{outcome}"}} {value}'
            )
    lines += [
        "# HELP barnstorm_messages_in_flight Messages sent and not yet settled.",
        "# TYPE barnstorm_messages_in_flight gauge",
    ]
    for name, counts in zip(type_names, metrics.by_type, strict=True):
        lines.append(f'barnstorm_messages_in_flight{{device_type="{name}"}} {counts.in_flight}')
    lines += [
        "# HELP barnstorm_latency_seconds Latency from intended send to acknowledgement.",
        "# TYPE barnstorm_latency_seconds summary",
    ]
    for name, counts in zip(type_names, metrics.by_type, strict=True):
        histogram = counts.latency
        for q in QUANTILES:
            lines.append(
                f'barnstorm_latency_seconds{{device_type="{name}",quantile="{q}"}} '
                f"{histogram.percentile(q):.6f}"
            )
        lines.append(
            f'barnstorm_latency_seconds_sum{{device_type="{name}"}} {histogram.total_seconds:.6f}'
        )
        lines.append(f'barnstorm_latency_seconds_count{{device_type="{name}"}} {histogram.total}')
    connections = metrics.connections
    lines += [
        "# HELP barnstorm_connected_devices Connections up now.",
        "# TYPE barnstorm_connected_devices gauge",
        f"barnstorm_connected_devices {connections.connected}",
        "# HELP barnstorm_connection_events_total Connection events by kind.",
        "# TYPE barnstorm_connection_events_total counter",
    ]
    for event in ("up", "failed", "lost", "reconnected"):
        lines.append(
            f'barnstorm_connection_events_total{{event="{event}"}} {getattr(connections, event)}'
        )
    lines += [
        "# HELP barnstorm_process_cpu_seconds_total CPU time of the simulator process.",
        "# TYPE barnstorm_process_cpu_seconds_total counter",
        f"barnstorm_process_cpu_seconds_total {time.process_time():.3f}",
        "# HELP barnstorm_process_resident_memory_bytes Resident memory of the simulator.",
        "# TYPE barnstorm_process_resident_memory_bytes gauge",
        f"barnstorm_process_resident_memory_bytes {rss_mb() * 2**20:.0f}",
    ]
    return "\n".join(lines) + "\n"


class PrometheusExporter:
    """``async with PrometheusExporter(":9464", metrics, type_names):`` serves /metrics."""

    def __init__(self, listen: str, metrics: Metrics, type_names: tuple[str, ...]) -> None:
        self.host, self.port = parse_listen(listen)
        self.metrics = metrics
        self.type_names = type_names
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> PrometheusExporter:
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port)
        except OSError as exc:
            raise ConfigError(
                "--prometheus", f"cannot listen on {self.host}:{self.port} ({exc.strerror})"
            ) from None
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b""
            if request.startswith(b"GET ") and path.split(b"?")[0] == b"/metrics":
                body = exposition(self.metrics, self.type_names).encode()
                status, kind = b"200 OK", b"text/plain; version=0.0.4; charset=utf-8"
            else:
                body, status, kind = b"not found: try /metrics\n", b"404 Not Found", b"text/plain"
            writer.write(
                b"HTTP/1.1 "
                + status
                + b"\r\nContent-Type: "
                + kind
                + b"\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()
