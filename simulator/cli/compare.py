"""``simulate compare BASELINE CURRENT``: regressions of a run against an earlier one, and
the same judgement at the end of a run (``--baseline FILE`` on run, mixed and soak)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from simulator.errors import ConfigError
from simulator.exitcodes import EXIT_OK, EXIT_SLA
from simulator.metrics.regression import (
    DEFAULT_RULES,
    UNITS,
    Comparison,
    change,
    compare,
    figure,
    parse_rules,
    scopes,
)

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


def judge_against(
    baseline_path: Path,
    current: dict[str, Any],
    rules: tuple[str, ...] = (),
    flag: str = "--baseline",
) -> Comparison:
    """Compare a run's report with the baseline file's, by ``rules`` (or the defaults)."""
    baseline = scopes(load_report(baseline_path, flag), f"{flag} {baseline_path}")
    return compare(baseline, scopes(current, "this run"), parse_rules(rules or DEFAULT_RULES))


#: the figures the terminal table shows (all of them are in --json and --html).
SHOWN = ("p95", "p99", "error_rate", "backend", "queries")


def print_comparison(result: Comparison, console: Console | None = None) -> None:
    """A row per scope, ``baseline → this run`` per figure, then the verdicts (broken
    first)."""
    console = console or Console(stderr=True)
    table = Table(box=None, title="baseline → this run")
    table.add_column("scope")
    for metric in SHOWN:
        unit = UNITS[metric]
        table.add_column(f"{metric}{(' ' + unit) if unit and unit != '%' else ''}", justify="right")
    for name in sorted(set(result.baseline) | set(result.current)):
        before, now = result.baseline.get(name) or {}, result.current.get(name) or {}
        cells = []
        for metric in SHOWN:
            b, c = before.get(metric), now.get(metric)
            cells.append(
                "–"
                if b is None and c is None
                else f"{figure(metric, b)} → {figure(metric, c)} ({change(metric, b, c)})"
            )
        table.add_row(escape(name), *cells)
    console.print(table)
    for judgement in sorted(result.judgements, key=lambda j: j.held):
        colour = "green" if judgement.held else "red"
        console.print(f"[{colour}]{escape(judgement.detail())}[/]")
    for name, why in sorted(result.skipped.items()):
        console.print(f"[dim]not judged: {escape(name)} ({escape(why)})[/]")
    if result.regressed:
        broken = sum(1 for j in result.judgements if not j.held)
        console.print(f"[red]REGRESSION: {broken} rule(s) broken against the baseline[/]")


@click.command("compare")
@click.argument("baseline", type=FILE)
@click.argument("current", type=FILE)
@click.option(
    "--rule",
    "rules",
    multiple=True,
    metavar="RULE",
    help='A regression rule, e.g. "p95<=baseline*1.2+5ms" (repeatable; default: '
    + ", ".join(DEFAULT_RULES)
    + ").",
)
@click.option("--html", type=FILE, help="Write both runs side by side to FILE.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare_command(
    baseline: Path, current: Path, rules: tuple[str, ...], html: Path | None, as_json: bool
) -> None:
    """Compare two reports (simulate run --report or simulate mixed --report): per
    endpoint and device type p50/p95/p99, error rate, rate, backend time and queries, each
    with its change, and the regression rules judged; exit 3 when one breaks."""
    parsed = parse_rules(rules or DEFAULT_RULES)
    first = load_report(baseline, "BASELINE")
    second = load_report(current, "CURRENT")
    result = compare(
        scopes(first, f"BASELINE {baseline}"), scopes(second, f"CURRENT {current}"), parsed
    )
    if html is not None:
        # Imported only for a page (run and mixed import this module for their verdicts).
        from simulator.report.compare_page import write_compare_html

        write_compare_html(result, str(baseline), str(current), html)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=1))
    else:
        print_comparison(result, Console())
    sys.exit(EXIT_SLA if result.regressed else EXIT_OK)
