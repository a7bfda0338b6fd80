"""A TCP fault proxy between the simulator and its target, for rehearsing network faults.

``FaultProxy`` listens on 127.0.0.1 and forwards every connection to the target (a broker
or an HTTP backend). On command, or on a scenario's schedule, it:

- **cut**: closes every open connection at once (both sides), as a broker restart or a
  load balancer failover would;
- **latency**: delays every chunk by ``latency_ms`` each way;
- **throttle**: limits each direction of each connection to ``bandwidth`` bytes/s;
- **blackhole**: stops forwarding; connections stay open and nothing answers (the
  nastiest fault: only timeouts and keep-alives notice);
- **refuse**: closes new connections as they arrive (the target is down).

In a scenario file (``--scenario``), a ``network_fault`` event puts the proxy in front of
the run's target for the whole run and applies the fault during its window::

    [[events]]
    type = "network_fault"
    fault = "blackhole"          # cut, latency, throttle, blackhole, refuse
    at = "10m"
    duration = "2m"              # a cut happens at "at" and lasts as long as reconnects take
    latency_ms = 400             # for latency
    bandwidth = 20000            # bytes/s, for throttle
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from types import TracebackType

log = logging.getLogger(__name__)

FAULTS = ("cut", "latency", "throttle", "blackhole", "refuse")
_CHUNK = 65536


@dataclass
class FaultState:
    latency: float = 0.0  # seconds added per chunk
    bandwidth: float | None = None  # bytes per second per direction
    blackhole: bool = False
    refuse: bool = False


class FaultProxy:
    """``async with FaultProxy("broker", 1883) as proxy:`` then connect to proxy.port."""

    def __init__(self, target_host: str, target_port: int, listen_host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.listen_host = listen_host
        self.port = 0
        self.state = FaultState()
        self.connections = 0  # accepted so far
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, self.listen_host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # Faults -------------------------------------------------------------------------

    def cut(self) -> None:
        """Close every open connection, both sides, now."""
        self.cuts += 1
        for client, upstream in list(self._pipes):
            for writer in (client, upstream):
                with contextlib.suppress(Exception):
                    writer.transport.abort()
        self._pipes.clear()

    def apply(self, fault: str, *, latency_ms: float = 0.0, bandwidth: float | None = None) -> None:
        """Start ``fault`` (see :data:`FAULTS`); a cut is instant, the others last until
        :meth:`clear`."""
        log.info("fault proxy: %s", fault)
        if fault == "cut":
            self.cut()
        elif fault == "latency":
            self.state.latency = latency_ms / 1000.0
        elif fault == "throttle":
            self.state.bandwidth = bandwidth
        elif fault == "blackhole":
            self.state.blackhole = True
        elif fault == "refuse":
            self.state.refuse = True
            self.cut()
        else:
            raise ValueError(f"unknown fault {fault!r}: expected one of {', '.join(FAULTS)}")

    def clear(self) -> None:
        """Back to a clean network."""
        log.info("fault proxy: clear")
        self.state = FaultState()

    # Forwarding ---------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.state.refuse:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        pipe = (writer, up_writer)
        self._pipes.add(pipe)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await asyncio.gather(self._forward(reader, up_writer), self._forward(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._pipes.discard(pipe)
            self._tasks.discard(task)
            for side in pipe:
                with contextlib.suppress(Exception):
                    side.transport.abort()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        budget_at = time.monotonic()
        while True:
            chunk = await reader.read(_CHUNK)
            if not chunk:
                with contextlib.suppress(Exception):
                    writer.transport.abort()
                return
            state = self.state
            if state.blackhole:
                continue  # swallowed: nothing arrives, nothing answers
            if state.latency:
                await asyncio.sleep(state.latency)
            if state.bandwidth:
                # Each byte costs 1/bandwidth seconds of this direction's time.
                budget_at = max(budget_at, time.monotonic()) + len(chunk) / state.bandwidth
                delay = budget_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            if writer.transport.is_closing():
                return
            writer.write(chunk)
            await writer.drain()
