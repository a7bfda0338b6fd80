"""The backend's spans in a run's report (``--otlp-receiver HOST:PORT``): the receiver
started before the first request and stopped after the last span came in, its figures
named after the flows the run sent and put beside them in the report."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Iterable
from typing import Any

from simulator.fleet.build import Fleet
from simulator.metrics.metrics import Metrics
from simulator.report.traces import traces_section
from simulator.runner.config import RunConfig
from simulator.traces.receiver import Receiver, start


@contextlib.asynccontextmanager
async def receiving(config: RunConfig) -> AsyncIterator[Receiver | None]:
    """The run's receiver (None without ``--otlp-receiver``), stopped on the way out."""
    listen = config.traces.otlp_receiver
    if listen is None:
        yield None
        return
    receiver = await asyncio.to_thread(start, listen, config.run_id)
    try:
        yield receiver
    finally:
        await asyncio.to_thread(receiver.stop)


def flows_of(type_names: Iterable[str], http: bool) -> list[tuple[str, str]]:
    """The (flow, request name) pairs a run's devices send: HTTP ingest requests, or MQTT 5
    publishes that carry trace context."""
    if http:
        return [("ingest", f"ingest {name}") for name in type_names] + [("ingest", "ingest batch")]
    return [("publish", f"publish {name}") for name in type_names]


def device_flows(
    config: RunConfig, fleet: Fleet, metrics: Metrics
) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """The flows a run's devices sent (named as trace ids name them), and the requests
    each sent when a message is a request (HTTP ingest, one message a request)."""
    http = config.target.http is not None
    names = fleet.devices.type_names
    requests = (
        {f"ingest {name}": metrics.by_type[i].sent for i, name in enumerate(names)}
        if http and config.target.http_batch == 1
        else {}
    )
    return flows_of(names, http), requests


async def collect(
    receiver: Receiver, pairs: list[tuple[str, str]], requests: dict[str, int]
) -> dict[str, Any]:
    """The receiver's final figures, once the backend's last batch is in, named;
    ``requests`` is how many requests each name sent (for the share whose trace came)."""
    try:
        summary = await asyncio.to_thread(receiver.finish)
    except OSError as exc:  # the receiver died: the run's report still counts
        print(f"barnstorm: the trace receiver did not answer: {exc}", file=sys.stderr)
        return {"receiver": receiver.address, "error": str(exc)}
    return traces_section(summary, pairs, requests, receiver.address)
