"""The run report: one JSON document (``--report``) and the summary printed at the end.

Schema (``schema_version`` 1; every count is an integer, latencies are milliseconds)::

    {
      "schema_version": 1,
      "barnstorm_version": "0.1.0",
      "outcome": "completed" | "interrupted" | "failed",
      "error": null | "one-line message",
      "exit_code": 0,
      "target": {"kind": "mqtt" | "http" | "file" | "memory", "url": ...,
                 "embedded_broker": null | "amqtt" | "mosquitto",
                 "backend": null | "http://127.0.0.1:PORT" (the embedded default's),
                 "qos": 1, "connection": "per-device" | "per-gateway"},
      "fleet": {"farms", "sites", "rooms", "devices", "devices_in_run", "seed"},
      "time": {"simulated_start", "simulated_end", "speed", "wall_seconds", "max_clock_lag_ms"},
      "totals": COUNTS,
      "by_device_type": {"cough_monitor": COUNTS, ...},
      "connections": {"up", "failed", "lost", "reconnected", "connected_at_end",
                      "errors": {kind: n}},
      "accounting": null | {"expected", "received", "lost", "duplicated", "unexpected", "malformed",
                             "late", "lost_ranges": [{"device_id", "first_seq", "last_seq"}]},
      "timeseries": [{"wall_s", "sim", "sent", "delivered", "failed", "dropped", "in_flight",
                      "rate_per_s", "failed_per_s", "error_rate", "p50_ms", "p95_ms",
                      "p99_ms", "connected", "cpu_pct", "rss_mb"}, ...] (see timeseries.py),
      "trends": [{"metric", "start", "end", "change_pct", "drift": bool}, ...],
      "sla": [{"sla": "ingest.p95<250ms", "scope", "metric", "op", "threshold", "unit",
               "actual", "held": true, "detail": "one line"}]  (with --sla only),
      "config": {the run's options, secrets removed}
    }

    COUNTS = {"sent", "acknowledged", "unconfirmed", "failed", "dropped", "in_flight",
              "unaccounted", "bytes", "rate_per_s",
              "latency_ms": {"p50", "p95", "p99", "max", "mean"}, "errors": {kind: n}}

``sent`` is every message the schedule produced; each ends as exactly one of
``acknowledged`` (the target confirmed it: PUBACK/PUBCOMP, a written line),
``unconfirmed`` (QoS 0: written to the socket, the protocol gives no receipt),
``failed`` (handed over, then lost or refused), ``dropped`` (never handed over: the
connection was down) or ``in_flight`` (in ``totals``: what the transport still held
when the run stopped, by its own count), so
``sent = acknowledged + unconfirmed + failed + dropped + in_flight``; anything else is
``unaccounted``, a defect in barnstorm that fails the run.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from simulator.redact import write_private

SCHEMA_VERSION = 1


def write_csv(report: dict[str, Any], prefix: Path) -> list[Path]:
    """``PREFIX_by_type.csv`` (a row per device type and the total) and, when the run kept
    a time series, ``PREFIX_timeseries.csv`` (a row per interval): for spreadsheets."""
    written = []
    by_type = prefix.with_name(prefix.name + "_by_type.csv")
    columns = ["device_type", "sent", "acknowledged", "unconfirmed", "failed", "dropped"]
    columns += ["in_flight", "bytes", "rate_per_s", "p50_ms", "p95_ms", "p99_ms", "max_ms"]
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(columns)
    items = [*report["by_device_type"].items(), ("total", report["totals"])]
    for name, counts in items:
        latency = counts["latency_ms"]
        quantiles = (latency[q] for q in ("p50", "p95", "p99", "max"))
        writer.writerow([name, *(counts[c] for c in columns[1:9]), *quantiles])
    write_private(by_type, text.getvalue(), "--csv")
    written.append(by_type)
    rows = report.get("timeseries") or []
    if rows:
        series = prefix.with_name(prefix.name + "_timeseries.csv")
        text = io.StringIO(newline="")
        dict_writer = csv.DictWriter(text, fieldnames=list(rows[0]))
        dict_writer.writeheader()
        dict_writer.writerows(rows)
        write_private(series, text.getvalue(), "--csv")
        written.append(series)
    return written


def write_report(report: dict[str, Any], path: Path) -> None:
    """Write ``report`` atomically, private to its owner, with no secret in it."""
    write_private(path, json.dumps(report, indent=2, ensure_ascii=False) + "\n", "--report")
