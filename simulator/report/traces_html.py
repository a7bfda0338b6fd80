"""The backend's own spans on the HTML pages of a run and of a mixed run: an N+1 found in
them first (the statement, the endpoint, the counts), then where the backend's tracing is
blind, then a table per flow."""

from __future__ import annotations

from html import escape
from typing import Any

from simulator.report.traces import why_n_plus_one

HEADER = (
    "flow",
    "request",
    "traces",
    "share traced",
    "server ms",
    "db spans/req",
    "db ms/req",
    "external/req",
    "uncovered",
    "longest gap ms",
)


def findings(section: dict[str, Any] | None) -> list[str]:
    """What the spans found, for the top of the page: N+1s, then blind spots."""
    if not section or "flows" not in section:
        return []
    lines = [
        f'<p class="broken">N+1 in {escape(found["name"])} (from the backend\'s spans): '
        f"{escape(why_n_plus_one(found))}</p>"
        for found in section.get("n_plus_one") or []
    ]
    lines += [
        f'<p class="broken">Blind spot in {escape(found["name"])}: '
        f"{found['gap_ms_mean']:.1f} of its {found['server_ms_mean']:.1f} ms in the backend "
        "are one stretch in no span (an uninstrumented call?)</p>"
        for found in section.get("blind") or []
    ]
    return lines


def traces_table(section: dict[str, Any] | None) -> list[str]:
    """The section's flows as a table, with how many spans joined nothing."""
    if not section:
        return []
    if "flows" not in section:
        error = escape(str(section.get("error") or "no figures"))
        return ["<h2>The backend's traces</h2>", f'<p class="broken">{error}</p>']
    spans = section.get("spans") or {}
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{escape(_cell(value))}</td>"
            for value in (
                flow["flow"],
                flow["name"],
                flow["traces"],
                _share(flow.get("trace_share")),
                flow.get("server_ms_mean"),
                flow.get("db_spans_per_request"),
                flow.get("db_ms_per_request"),
                flow.get("external_per_request"),
                _share(flow.get("uncovered_share")),
                flow.get("gap_ms_mean"),
            )
        )
        + "</tr>"
        for flow in section["flows"]
    )
    head = "".join(f"<th>{escape(name)}</th>" for name in HEADER)
    return [
        "<h2>The backend's traces</h2>",
        f'<p class="muted">{spans.get("received", 0):,} spans received at '
        f"{escape(str(section.get('receiver')))}, {spans.get('joined', 0):,} joined to "
        f"barnstorm's requests, {spans.get('unjoined', 0):,} joined nothing</p>",
        f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>",
    ]


def _share(value: float | None) -> str | None:
    return None if value is None else f"{value:.0%}"


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
