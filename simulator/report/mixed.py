"""The JSON report of a mixed run (``simulate mixed --report FILE.json``), in the family of
``simulate run``'s: per request name (dashboard requests and device messages alike) the
latency, errors and rate, beside what the backend said its time went to (Server-Timing);
per device type the same; the SLA verdicts; the run over time. ``simulate compare``
reads it, and a run's report, as a baseline or a current run::

    {"schema_version": 1, "kind": "mixed", "barnstorm_version", "run_id", "host",
     "seconds",
     "requests": [{"name", "kind": "dashboard" | "device", "requests", "failures",
                   "error_rate", "rate_per_s", "p50_ms", "p95_ms", "p99_ms", "max_ms",
                   "backend": null | {"responses", "ms": {"db", "app", "total", ...},
                                      "queries_per_request", "max_queries",
                                      "n_plus_one": null | "why"}}],
     "by_device_type": {"cough_monitor": a request entry, ...},
     "fleet_loop_lag_ms": [{"shard", "p50", "p99", "max"}] (each fleet process's own
                           event-loop lag: inside every device latency),
     "n_plus_one": [{"name", "why", "from": "spans" | "server-timing", "statement"}],
     "traces": null | {"receiver", "spans": {"received", "joined", "unjoined"}, "flows": [
                {"flow", "name", "traces", "trace_share", "server_ms_mean",
                 "db_spans_per_request", "db_ms_per_request", "external_per_request",
                 "uncovered_share", "repeated_statements", "growing"}],
               "n_plus_one", "blind", "rows"} (the backend's own spans, --otlp-receiver),
     "sla": [verdicts as in a run's report], "timeseries": [rows], "config": {...}}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simulator import __version__
from simulator.metrics.sla import Verdict
from simulator.redact import write_private
from simulator.report.traces import why_n_plus_one


def mixed_report(data: dict[str, Any], verdicts: list[Verdict]) -> dict[str, Any]:
    requests = data["requests"]
    return {
        "schema_version": 1,
        "kind": "mixed",
        "barnstorm_version": __version__,
        "run_id": data.get("run_id"),
        "host": data.get("host"),
        "seconds": round(float(data["seconds"]), 3),
        "requests": requests,
        "by_device_type": {
            r["name"].split(" ", 1)[-1]: r for r in requests if r["kind"] == "device"
        },
        "fleet_loop_lag_ms": data.get("fleet_loop_lag_ms") or [],
        "n_plus_one": [
            {
                "name": found["name"],
                "why": why_n_plus_one(found),
                "statement": found["statement"],
                "from": "spans",
            }
            for found in (data.get("traces") or {}).get("n_plus_one") or []
        ]
        + [
            {"name": r["name"], "why": r["backend"]["n_plus_one"], "from": "server-timing"}
            for r in requests
            if r.get("backend") and r["backend"].get("n_plus_one")
        ],
        "traces": data.get("traces"),
        "sla": [verdict.as_dict() for verdict in verdicts],
        "timeseries": data.get("rows") or [],
        "config": data.get("config") or {},
    }


def write_mixed_report(data: dict[str, Any], verdicts: list[Verdict], path: Path) -> None:
    write_private(path, json.dumps(mixed_report(data, verdicts), indent=1) + "\n", "--report")
