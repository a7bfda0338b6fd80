"""``simulate compare BASELINE... CURRENT``: regressions of a run against earlier ones, and
the same judgement at the end of a run (``--baseline FILE`` on run, mixed and soak)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from simulator.errors import ConfigError
from simulator.exitcodes import EXIT_OK, EXIT_SLA
from simulator.metrics.regression import (
    DEFAULT_RULES,
    Comparison,
    Mismatch,
    check_match,
    compare,
    describe,
    figure,
    parse_rules,
    read_rules_file,
    scopes,
    write_comparison_junit,
)
from simulator.redact import write_private

FILE = click.Path(dir_okay=False, path_type=Path)


def load_report(path: Path, flag: str) -> dict[str, Any]:
    """A report file, or one line naming the flag and what was wrong."""
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise ConfigError(flag, f"cannot read {path} ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(flag, f"{path} is not JSON (not UTF-8 text)") from None
    except RecursionError:
        raise ConfigError(flag, f"{path} is not a barnstorm report (nested too deeply)") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(flag, f"{path} is not JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ConfigError(flag, f"{path} is not a barnstorm report")
    return data


def baseline_files(paths: tuple[Path, ...], last: int | None, flag: str) -> list[Path]:
    """Baseline reports: files as given, and the ``*.json`` reports in folders given, oldest
    first (by modification time); with ``last``, only the newest ``last`` of them."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(path.glob("*.json"), key=lambda p: (p.stat().st_mtime, p.name))
        elif path.exists():
            found.append(path)
        else:
            raise ConfigError(flag, f"{path} does not exist")
    if not found:
        raise ConfigError(flag, f"no report in {', '.join(map(str, paths))}")
    return found[-last:] if last else found


def judge_against(
    baseline_paths: Path | list[Path],
    current: dict[str, Any],
    rules: tuple[str, ...] = (),
    flag: str = "--baseline",
    allow_mismatch: bool = False,
) -> Comparison:
    """Compare a run's report with the baselines', by ``rules`` (or the defaults). Reports
    that cannot be judged against each other are an error, unless ``allow_mismatch``."""
    paths = [baseline_paths] if isinstance(baseline_paths, Path) else baseline_paths
    loaded = [(f"{flag} {path}", load_report(path, flag)) for path in paths]
    mismatch = check_match(loaded, ("this run", current))
    if mismatch and not allow_mismatch:
        raise Mismatch(flag, f"{mismatch} (--allow-mismatch judges what they share)")
    return compare(
        [scopes(report, name) for name, report in loaded],
        scopes(current, "this run"),
        parse_rules(rules or DEFAULT_RULES),
        mismatch,
    )


def print_comparison(result: Comparison, console: Console | None = None) -> None:
    """The verdict first (broken rules, the likely cause first, each with its evidence),
    then what improved, what could not be judged and why, and a line per endpoint: all of
    it in lines that wrap, readable in an 80-column CI log."""
    console = console or Console(stderr=True)
    count = len(result.baselines)
    judged = len({v.scope for v in result.verdicts})
    console.print(
        f"compared with {count} baseline{'s' if count > 1 else ''}: {judged} endpoints, "
        f"{len(result.verdicts)} rules judged"
    )
    if result.mismatch:
        console.print(f"[yellow]mismatch, judged anyway: {escape(result.mismatch)}[/]")
    broken = result.broken
    if broken:
        console.print(
            f"[bold red]REGRESSION: {len(broken)} rule(s) broken[/], the likely cause first:"
        )
        for number, verdict in enumerate(broken, 1):
            console.print(f"[red]{number:>2}. {escape(verdict.scope)}[/]")
            console.print(f"    {escape(describe(verdict))}")
            console.print(f"    [dim]{escape(verdict.evidence)}[/]")
    for verdict in result.improved:
        console.print(f"[green]improved: {escape(verdict.scope)}: {escape(describe(verdict))}[/]")
    for unjudged in result.unjudged:
        console.print(
            f"[dim]not judged: {escape(unjudged.scope)} {unjudged.metric} "
            f"({escape(unjudged.reason)})[/]"
        )
    for name in result.only_now:
        console.print(f"[dim]only in this run: {escape(name)}[/]")
    for name in result.only_before:
        console.print(f"[dim]only in the baselines: {escape(name)}[/]")
    for name in sorted(set(result.baseline) | set(result.current)):
        before, now = result.baseline.get(name) or {}, result.current.get(name) or {}
        parts = [
            f"{metric} {figure(metric, before.get(metric))} → "
            f"{figure(metric, now.get(metric), with_unit=True)}"
            for metric in SHOWN
            if before.get(metric) is not None or now.get(metric) is not None
        ]
        console.print(f"{escape(name)}: [dim]{escape(' · '.join(parts))}[/]")
    if not broken:
        console.print("[green]no regression against the baseline[/]")


#: the figures each endpoint's line shows (all of them are in --json and --html).
SHOWN = ("p95", "error_rate", "queries", "backend")


@click.command("compare")
@click.argument("reports", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--rule",
    "rules",
    multiple=True,
    metavar="RULE",
    help='A regression rule, e.g. "p95<=baseline*1.2+5ms" (repeatable; default: '
    + ", ".join(DEFAULT_RULES)
    + ").",
)
@click.option(
    "--rules-file",
    type=click.Path(path_type=Path),
    help="Regression rules from FILE, one a line (# comments); with --rule, both apply.",
)
@click.option(
    "--last",
    type=click.IntRange(min=1),
    help="Judge against the newest N of the baseline reports given (files and folders).",
)
@click.option(
    "--allow-mismatch",
    is_flag=True,
    help="Judge reports of different kinds, or with few endpoints in common, on what they "
    "share (an error otherwise).",
)
@click.option("--html", type=FILE, help="Write the runs side by side to FILE.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.option(
    "--report",
    type=FILE,
    help="Write the comparison as JSON to FILE (what --json prints), beside the text.",
)
@click.option(
    "--junit",
    type=FILE,
    help="Write the verdicts as JUnit XML to FILE (a test case per rule and endpoint), for "
    "a CI's test view.",
)
def compare_command(
    reports: tuple[Path, ...],
    rules: tuple[str, ...],
    rules_file: Path | None,
    last: int | None,
    allow_mismatch: bool,
    html: Path | None,
    as_json: bool,
    report: Path | None,
    junit: Path | None,
) -> None:
    """Judge the last report given (CURRENT) against the ones before it (BASELINE...:
    reports, or folders of them; --last N keeps the newest N): per endpoint and device type
    percentiles with confidence bounds, failure rates and status mix with exact tests,
    queries and bytes per request as they are, against the spread of the baselines. Broken
    rules come ranked, the likely cause first; exit 3 when one breaks, 2 when the reports
    cannot be judged against each other."""
    if len(reports) < 2:
        raise ConfigError("REPORTS", "expected at least a baseline and a current report")
    current_path = reports[-1]
    if current_path.is_dir():
        raise ConfigError("CURRENT", f"{current_path} is a folder: give the run's report")
    if rules_file is not None:
        rules = (*read_rules_file(rules_file), *rules)
    parse_rules(rules or DEFAULT_RULES)
    paths = baseline_files(reports[:-1], last, "BASELINE")
    current = load_report(current_path, "CURRENT")
    result = judge_against(paths, current, rules, "BASELINE", allow_mismatch)
    if html is not None:
        # Imported only for a page (run and mixed import this module for their verdicts).
        from simulator.report.compare_page import write_compare_html

        names = ", ".join(str(p) for p in paths)
        write_compare_html(result, names, str(current_path), html)
    if report is not None:
        write_private(report, json.dumps(result.as_dict(), indent=1) + "\n", "--report")
    if junit is not None:
        write_comparison_junit(result, junit)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=1))
    else:
        print_comparison(result, Console())
    sys.exit(EXIT_SLA if result.regressed else EXIT_OK)
