"""Trace context on every HTTP request barnstorm makes, so an APM can split the backend's time
by simulated flow.

Each request carries a W3C ``traceparent`` (a fresh trace per dashboard view or ingest
request, sampled) and a W3C ``baggage`` naming the run and the flow
(``barnstorm.run=1f3a9c2e,barnstorm.flow=room_detail``). With ``sentry=True`` it also
carries Sentry's own ``sentry-trace`` header for the same trace, for Sentry SDKs that do
not read ``traceparent``. The run id comes from ``BARNSTORM_RUN_ID`` when set, so the
device fleet and the dashboard users of one mixed run share it.
"""

from __future__ import annotations

import os
import secrets
from urllib.parse import quote

RUN_ID_VARIABLE = "BARNSTORM_RUN_ID"
SENTRY_VARIABLE = "BARNSTORM_SENTRY_TRACE"


def current_run_id() -> str:
    """This run's id: ``BARNSTORM_RUN_ID``, or a new random one."""
    return os.environ.get(RUN_ID_VARIABLE) or secrets.token_hex(4)


class TraceContext:
    """Makes the trace headers of one request of a flow."""

    def __init__(self, run: str, *, sentry: bool | None = None) -> None:
        self.run = run
        self.sentry = (
            sentry if sentry is not None else os.environ.get(SENTRY_VARIABLE, "") not in ("", "0")
        )

    def headers(self, flow: str) -> dict[str, str]:
        """Headers for a new trace of ``flow`` (a dashboard view or ``ingest <type>``)."""
        random = os.urandom(24).hex()
        trace_id, span_id = random[:32], random[32:]
        flow = quote(flow.replace(" ", "_"))
        headers = {
            "traceparent": f"00-{trace_id}-{span_id}-01",
            "baggage": f"barnstorm.run={quote(self.run)},barnstorm.flow={flow}",
        }
        if self.sentry:
            headers["sentry-trace"] = f"{trace_id}-{span_id}-1"
        return headers
