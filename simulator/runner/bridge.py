"""The device side of the Locust bridge: results streamed as JSON lines on stdout.

``simulate run --stream-results`` writes, twice a second, one line::

    {"transport": "MQTT", "types": ["climate_node", "cough_monitor", "gateway"],
     "results": {"type": [1, 0, ...], "latency_ms": [12.3, null, ...],
                 "bytes": [361, 257, ...], "error": [null, "timeout", ...]},
     "connected": 1024, "held": {"offline_at_stop": 3}}

one result per settled message, in columns (Locust parses a line of a hundred thousand
results in a fifteenth of the time a list per result took): the device type (an index into
``types``), the latency in ms (null when the message failed), the payload bytes and the
error kind (null on success); with HTTP ingest, also
``"timing"``: the target's Server-Timing sums since the last line, by request name; and
``"loop_lag_ms"``: the fleet process's own event-loop lag so far (p50, p99, max ...).
Messages a device kept and never handed to the target
(:data:`~simulator.messages.HELD_ON_DEVICE`), and those its own outage cut off before the
receipt came, are no result (:data:`~simulator.messages.DEVICE_SIDE`): they are counted in
``held``, by reason, since the last line, so they never show as the target's failures.
The Locust process (``locustfiles/mixed.py``) reads the lines and fires one Locust
request event per result, so devices appear beside the dashboard endpoints. The engine
never imports Locust.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import operator
import sys
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any, BinaryIO

import orjson

from simulator.messages import DEVICE_SIDE, Message, Outcome
from simulator.metrics.loop_lag import LoopLag
from simulator.metrics.metrics import Metrics
from simulator.metrics.server_timing import ServerTimings

FLUSH_EVERY = 0.5
_TYPE = operator.attrgetter("type_code")
_PAYLOAD = operator.attrgetter("payload")


class ResultStream:
    """Collects settled messages and writes them in batches to ``out``."""

    def __init__(self, metrics: Metrics, transport: str, out: BinaryIO | None = None) -> None:
        self.metrics = metrics
        self.transport = transport.upper()
        self.out = out or sys.stdout.buffer
        #: the results since the last line, column by column (see the module docstring).
        self.types: list[int] = []
        self.latencies: list[float | None] = []
        self.sizes: list[int] = []
        self.errors: list[str | None] = []
        self.held: Counter[str] = Counter()
        metrics.observer = self.observe
        metrics.written_observer = self.observe_written
        #: the target's Server-Timing since the last line, by Locust request name.
        self.timings = ServerTimings()
        #: the fleet process's own event-loop lag, sent with every line.
        self.lag: LoopLag | None = None
        metrics.timing_observer = self.observe_timing

    def observe_timing(self, name: str, header: str, size: int, at: float) -> None:
        verb = "ingest" if self.transport == "HTTP" else "publish"
        self.timings.observe(f"{verb} {name}", header, size, at)

    def observe(
        self, message: Message, outcome: Outcome, error: str | None, latency: float | None
    ) -> None:
        if error in DEVICE_SIDE:
            self.held[error] += 1
            return
        self.types.append(message.type_code)
        self.sizes.append(len(message.payload))
        if outcome is Outcome.DROPPED or error is not None:
            self.latencies.append(None)
            self.errors.append(error or outcome.value)
        else:
            self.latencies.append(round((latency or 0.0) * 1000.0, 3))
            self.errors.append(None)

    def observe_written(self, messages: list[Message]) -> None:
        """Messages written locally (``--output``): delivered, in no time worth measuring."""
        self.types.extend(map(_TYPE, messages))
        self.sizes.extend(map(len, map(_PAYLOAD, messages)))
        self.latencies.extend(itertools.repeat(0.0, len(messages)))
        self.errors.extend(itertools.repeat(None, len(messages)))

    def flush(self) -> None:
        results = {
            "type": self.types,
            "latency_ms": self.latencies,
            "bytes": self.sizes,
            "error": self.errors,
        }
        self.types, self.latencies, self.sizes, self.errors = [], [], [], []
        held, self.held = self.held, Counter()
        line: dict[str, Any] = {
            "transport": self.transport,
            "types": self.metrics.type_names,
            "results": results,
            "connected": self.metrics.connections.connected,
            "held": dict(held),
        }
        timing = self.timings.take()
        if timing:
            line["timing"] = timing
        lag = self.lag.summary() if self.lag is not None else None
        if lag:
            line["loop_lag_ms"] = lag
        self.out.write(orjson.dumps(line) + b"\n")
        self.out.flush()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async def pump() -> None:
            while True:
                await asyncio.sleep(FLUSH_EVERY)
                self.flush()

        async with asyncio.TaskGroup() as group:
            task = group.create_task(pump(), name="barnstorm-result-stream")
            try:
                yield
            finally:
                task.cancel()
