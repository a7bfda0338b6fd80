"""What a finished run leaves: the backend's own account and the SLA verdicts put into its
report, then the report's files (JSON, HTML, CSV). A run and a run over several processes
(``runner.shards``) both end here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulator.exitcodes import EXIT_FAILURES, EXIT_LOSS, EXIT_OK, EXIT_SLA
from simulator.metrics.server_timing import growth_across_steps
from simulator.metrics.sla import Verdict, write_junit
from simulator.report.files import write_csv, write_report
from simulator.runner.config import RunConfig


def put_backend(
    report: dict[str, Any], summary: dict[str, dict[str, Any]], rows: list[dict[str, Any]]
) -> None:
    """What the target said its time went to (Server-Timing of HTTP ingest), by device
    type, and ingest whose queries per request grew over the run (an N+1)."""
    if not summary:
        return
    report["backend"] = summary
    for name, figures in summary.items():
        if name in report["by_device_type"]:
            report["by_device_type"][name]["backend"] = figures
    report["n_plus_one"] = growth_across_steps([row.get("backend") or {} for row in rows])
    for name, figures in summary.items():
        if figures.get("n_plus_one") and name not in {s["name"] for s in report["n_plus_one"]}:
            report["n_plus_one"].append({"name": name, "why": figures["n_plus_one"]})


def write_outputs(report: dict[str, Any], config: RunConfig) -> None:
    """The JSON report first (it holds everything), then the HTML page and the CSV files."""
    if config.outputs.report is not None:
        write_report(report, config.outputs.report)
    if config.outputs.html is not None:
        # Imported only for a page: the renderers are a tenth of a second of every start.
        from simulator.report.html import write_html

        write_html(report, config.outputs.html)
    if config.outputs.csv is not None:
        write_csv(report, config.outputs.csv)


def judge(report: dict[str, Any], verdicts: list[Verdict], junit: Path | None) -> None:
    """Put the SLA verdicts into ``report`` (and ``junit``); a broken SLA turns a run that
    would exit 0, EXIT_LOSS or EXIT_FAILURES into EXIT_SLA."""
    report["sla"] = [verdict.as_dict() for verdict in verdicts]
    if any(not verdict.held for verdict in verdicts) and report["exit_code"] in (
        EXIT_OK,
        EXIT_LOSS,
        EXIT_FAILURES,
    ):
        report["exit_code"] = EXIT_SLA
    if junit is not None:
        write_junit(verdicts, junit, report["time"]["wall_seconds"], "barnstorm SLAs")
