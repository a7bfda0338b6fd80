"""The ``traces`` section of a report: what the backend's own spans said about each flow.

Per flow (a request name within a dashboard view, or a device type's ingest): the traces
that came back and their share of the requests sent, the server's time, database spans per
request and their time, external calls, the share of the server span's time no child span
covers (where the backend's tracing is blind), and the N+1 suspects: a statement repeated
many times within one request, or database spans per request that grew over the run.
"""

from __future__ import annotations

from typing import Any

from simulator.traces.fold import name_flows

#: a flow whose requests spend this share of their server time in one stretch no child
#: span covers, of this many milliseconds, is named as where tracing is blind (the many
#: small gaps of a framework's own work between its queries are not).
BLIND_SHARE = 0.5
BLIND_MS = 10.0


def traces_section(
    summary: dict[str, Any],
    pairs: list[tuple[str, str]],
    requests: dict[str, int],
    address: str,
) -> dict[str, Any]:
    """The section from a receiver's summary, its flows named after ``pairs`` (flow,
    request name) and set beside ``requests`` (requests sent per name)."""
    named = name_flows(summary, pairs)
    flows: list[dict[str, Any]] = []
    for (flow, name), figures in named.items():
        sent = requests.get(name)
        entry = {
            "flow": flow,
            "name": name,
            "requests": sent,
            "trace_share": round(figures["traces"] / sent, 4) if sent else None,
            **{k: v for k, v in figures.items() if k not in ("flow_tag", "name_tag")},
        }
        flows.append(entry)
    tags = {(f["flow_tag"], f["name_tag"]): pair for pair, f in named.items()}
    rows = [
        {
            "t": row["t"],
            "flow": tags.get((row["flow_tag"], row["name_tag"]), ("?", "?"))[0],
            "name": tags.get((row["flow_tag"], row["name_tag"]), ("?", "?"))[1],
            **{k: row[k] for k in ("traces", "db_spans_per_request", "server_ms_mean")},
        }
        for row in summary.get("rows", [])
    ]
    return {
        "receiver": address,
        "spans": summary.get("spans"),
        "unjoined_services": summary.get("unjoined_services"),
        "traces_without_entry": summary.get("traces_without_entry"),
        "refused_requests": summary.get("refused_requests"),
        "receiver_cpu_s": summary.get("cpu_s"),
        "flows": flows,
        "n_plus_one": n_plus_one(flows),
        "blind": blind(flows),
        "window_s": summary.get("window_s"),
        "rows": rows,
    }


#: figures of a flow that are per request, averaged over a request name's flows by traces.
PER_TRACE = (
    "server_ms_mean",
    "db_spans_per_request",
    "db_ms_per_request",
    "external_per_request",
    "uncovered_share",
    "gap_ms_mean",
    "gap_share",
)


def by_request(section: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per request name (one name may be sent by several views): the traces that came and
    the per-request figures, weighted by traces; the repeated statements of its flows."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for flow in section.get("flows") or []:
        grouped.setdefault(flow["name"], []).append(flow)
    figures: dict[str, dict[str, Any]] = {}
    for name, flows in grouped.items():
        traces = sum(f["traces"] for f in flows)
        entry: dict[str, Any] = {"traces": traces, "spans": sum(f["spans"] for f in flows)}
        for key in PER_TRACE:
            weighted = [(f[key], f["traces"]) for f in flows if f.get(key) is not None]
            weight = sum(w for _, w in weighted)
            entry[key] = round(sum(v * w for v, w in weighted) / weight, 4) if weight else None
        shares = [f["trace_share"] for f in flows if f.get("trace_share") is not None]
        entry["trace_share"] = shares[0] if len(flows) == 1 and shares else None
        entry["repeated_statements"] = [s for f in flows for s in f["repeated_statements"]]
        figures[name] = entry
    return figures


def n_plus_one(flows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The flows whose spans show an N+1, the worst first: a statement repeated many times
    in one request (``simulator.traces.fold.N_PLUS_ONE_REPEATS``), or database spans per
    request that grew over the run."""
    found = []
    for flow in flows:
        repeated = flow.get("repeated_statements") or []
        growing = flow.get("growing")
        if not repeated and not growing:
            continue
        worst = repeated[0] if repeated else None
        found.append(
            {
                "name": flow["name"],
                "flow": flow["flow"],
                "statement": worst["statement"] if worst else None,
                "max_repeats": worst["max_repeats"] if worst else None,
                "mean_repeats": worst["mean_repeats"] if worst else None,
                "traces_repeating": worst["traces"] if worst else 0,
                "traces": flow["traces"],
                "db_spans_per_request": flow["db_spans_per_request"],
                "growing": growing,
            }
        )
    found.sort(key=lambda f: -(f["max_repeats"] or 0) - f["db_spans_per_request"])
    return found


def blind(flows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The flows where most of the server's time is one stretch in no child span: work
    the backend's tracing does not see (an uninstrumented client, a blocking call)."""
    found = [
        {
            "name": flow["name"],
            "flow": flow["flow"],
            "gap_ms_mean": flow["gap_ms_mean"],
            "gap_share": flow["gap_share"],
            "uncovered_share": flow["uncovered_share"],
            "server_ms_mean": flow["server_ms_mean"],
        }
        for flow in flows
        if (flow.get("gap_share") or 0) >= BLIND_SHARE
        and (flow.get("gap_ms_mean") or 0) >= BLIND_MS
    ]
    found.sort(key=lambda f: -f["gap_ms_mean"])
    return found


def why_n_plus_one(found: dict[str, Any]) -> str:
    """An N+1 suspect of :func:`n_plus_one` in words: the statement and its counts."""
    parts = []
    if found["statement"]:
        parts.append(
            f"{found['statement']!r} {found['max_repeats']:,} times in one request "
            f"({found['traces_repeating']:,} of {found['traces']:,} traces)"
        )
    if found["growing"]:
        grew = found["growing"]
        parts.append(
            f"database spans per request grew from {grew['from']:g} to {grew['to']:g} over the run"
        )
    return "; ".join(parts)


def summary_lines(section: dict[str, Any] | None) -> list[str]:
    """The section in a few lines for the end of a run."""
    if not section or "flows" not in section:
        return []
    spans = section.get("spans") or {}
    traces = sum(f["traces"] for f in section["flows"])
    lines = [
        f"traces: {spans.get('received', 0):,} spans from the backend, "
        f"{spans.get('joined', 0):,} joined to {traces:,} requests, "
        f"{spans.get('unjoined', 0):,} joined nothing"
    ]
    for found in section.get("n_plus_one", []):
        lines.append(f"N+1 in {found['name']} (from spans): {why_n_plus_one(found)}")
    for found in section.get("blind", []):
        lines.append(
            f"blind spot in {found['name']}: {found['gap_ms_mean']:.1f} of its "
            f"{found['server_ms_mean']:.1f} ms in the backend are one stretch in no span"
        )
    return lines
