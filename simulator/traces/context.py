"""Trace context on every HTTP request barnstorm makes (and, when asked, on MQTT 5
publishes), so an APM can split the backend's time by simulated flow, and barnstorm can
join the backend's spans back to the request that caused them.

Each request starts its own trace: a W3C ``traceparent`` whose trace id says whose it is.
Its first eight bytes are the run's tag (2 bytes, from the run id, shared by every process
of one run), the flow's (2 bytes: a dashboard view, or ``ingest``) and the request name's
(4 bytes, as the report names it); the last eight are random, as samplers that decide by
trace id (OpenTelemetry's ``TraceIdRatioBased``) expect. The receiver joins a span to its
flow from its trace id alone, keeping nothing per request. A W3C ``baggage`` names the run,
the flow and the request (``barnstorm.run=1f3a9c2e,barnstorm.flow=room_detail,...``).

The sampled flag: ``sample`` (``--trace-sample P``) is the share of requests marked sampled;
the others are marked not sampled. With the default 0 no request is marked, so the
backend's own sampler decides what to keep. With ``sentry=True`` a request also carries
Sentry's ``sentry-trace`` for the same trace, whose sampled field follows the same flag (and
is left out, Sentry's "deferred", when nothing is sampled: Sentry's SDK then applies its own
``traces_sample_rate`` instead of keeping every load request).
"""

from __future__ import annotations

import hashlib
import os
import random
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from simulator.traces.export import ClientSpans

RUN_ID_VARIABLE = "BARNSTORM_RUN_ID"
SENTRY_VARIABLE = "BARNSTORM_SENTRY_TRACE"
SAMPLE_VARIABLE = "BARNSTORM_TRACE_SAMPLE"


def current_run_id() -> str:
    """This run's id: ``BARNSTORM_RUN_ID``, or a new random one."""
    return os.environ.get(RUN_ID_VARIABLE) or secrets.token_hex(4)


def tag(text: str, size: int) -> bytes:
    """The first ``size`` bytes of a stable hash of ``text``: the same in every process."""
    return hashlib.blake2b(text.encode(), digest_size=8).digest()[:size]


@dataclass(frozen=True)
class FlowKey:
    """What a trace id of this run says: the flow's and the request name's tags (hex)."""

    flow: str
    name: str


def read_trace_id(trace_id: bytes, run_tag: bytes) -> FlowKey | None:
    """The flow a trace id of the run tagged ``run_tag`` belongs to, or None when the
    trace is not one of this run's (another run's, the backend's own traffic)."""
    if len(trace_id) != 16 or trace_id[:2] != run_tag:
        return None
    return FlowKey(trace_id[2:4].hex(), trace_id[4:8].hex())


def flow_key(flow: str, name: str) -> FlowKey:
    """The key a flow and request name have in trace ids (to name what the receiver saw)."""
    return FlowKey(tag(flow, 2).hex(), tag(name, 4).hex())


def sample_share(text: str | None, source: str = "--trace-sample") -> float:
    """A share of requests to mark sampled: ``0.1``, ``10%``; 0 when not given."""
    if text is None or not str(text).strip():
        return 0.0
    value = str(text).strip()
    try:
        share = float(value.removesuffix("%")) / (100.0 if value.endswith("%") else 1.0)
    except ValueError:
        raise ValueError(f'{source}: expected a share such as 0.1 or 10%, got "{value}"') from None
    if not 0.0 <= share <= 1.0:
        raise ValueError(f'{source}: expected a share from 0 to 1 (0% to 100%), got "{value}"')
    return share


class TraceContext:
    """Makes the trace headers of one request of a flow."""

    def __init__(
        self, run: str, *, sentry: bool | None = None, sample: float | None = None
    ) -> None:
        self.run = run
        self.run_tag = tag(run, 2)
        self.sentry = (
            sentry if sentry is not None else os.environ.get(SENTRY_VARIABLE, "") not in ("", "0")
        )
        self.sample = (
            sample if sample is not None else sample_share(os.environ.get(SAMPLE_VARIABLE))
        )
        self._tags: dict[tuple[str, str], bytes] = {}
        #: where barnstorm's own client spans go (``--otlp-export``), if anywhere.
        self.exporter: ClientSpans | None = None
        #: the payload field an MQTT 3.1.1 publish carries its traceparent in
        #: (``--trace-envelope``), if any.
        self.envelope: str | None = None

    def new_ids(self, flow: str, name: str) -> tuple[str, str, bool]:
        """A new trace id for a request ``name`` of ``flow``, its span id, and whether it
        is marked sampled."""
        prefix = self._tags.get((flow, name))
        if prefix is None:
            prefix = self._tags[(flow, name)] = self.run_tag + tag(flow, 2) + tag(name, 4)
        random_part = os.urandom(16)
        trace_id = (prefix + random_part[:8]).hex()
        sampled = self.sample > 0.0 and (self.sample >= 1.0 or random.random() < self.sample)
        return trace_id, random_part[8:].hex(), sampled

    def headers(
        self,
        flow: str,
        name: str | None = None,
        view: str | None = None,
        session: str | None = None,
    ) -> dict[str, str]:
        """Headers for a new trace of request ``name`` (default: the flow's own name) of
        ``flow`` (a dashboard view, or ``ingest``); ``view`` names the one opening of a
        view its requests share (``barnstorm.view`` in the baggage)."""
        name = name or flow
        trace_id, span_id, sampled = self.new_ids(flow, name)
        baggage = (
            f"barnstorm.run={quote(self.run)},barnstorm.flow={_baggage(flow)},"
            f"barnstorm.request={_baggage(name)}"
        )
        if view is not None:
            baggage += f",barnstorm.view={_baggage(view)}"
        if session is not None:
            baggage += f",barnstorm.session={_baggage(session)}"
        headers = {
            "traceparent": f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}",
            "baggage": baggage,
        }
        if self.sentry:
            decision = ("-1" if sampled else "-0") if self.sample > 0.0 else ""
            headers["sentry-trace"] = f"{trace_id}-{span_id}{decision}"
        return headers

    def traceparent(self, flow: str, name: str) -> str | None:
        """A ``traceparent`` for a message, only for the sampled share (``None`` for the
        rest, decided first and cheaply: a broker is not flooded with trace context nobody
        keeps, and an unsampled message costs one random draw)."""
        if self.sample <= 0.0 or (self.sample < 1.0 and random.random() >= self.sample):
            return None
        prefix = self._tags.get((flow, name))
        if prefix is None:
            prefix = self._tags[(flow, name)] = self.run_tag + tag(flow, 2) + tag(name, 4)
        random_part = os.urandom(16)
        return f"00-{(prefix + random_part[:8]).hex()}-{random_part[8:].hex()}-01"


def _baggage(value: str) -> str:
    """A baggage value: percent-encoded (W3C baggage allows no space, comma or semicolon
    in a value), so that the name reads back exactly."""
    return quote(value, safe="")
