"""``simulate stats``: the statistics of a telemetry file, simulated or exported from real
devices, alone or beside another."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table as RichTable

from simulator.errors import ConfigError
from simulator.report.stats import (
    DEFAULT_BANDS,
    DEFAULT_BELOW,
    Options,
    measure,
    parse_columns,
    read_file,
)
from simulator.report.stats_page import markdown, render_stats_html, rows

FILE = click.Path(dir_okay=False, path_type=Path)


def _bands(values: tuple[str, ...]) -> dict[str, tuple[float, ...]]:
    bands = dict(DEFAULT_BANDS)
    for text in values:
        name, sep, edges = text.partition("=")
        try:
            numbers = tuple(sorted((float(e) for e in edges.split(",") if e.strip()), reverse=True))
        except ValueError:
            numbers = ()
        if not sep or not name.strip() or not numbers:
            raise ConfigError("--bands", f'expected FIELD=EDGE,EDGE,... (numbers), got "{text}"')
        bands[name.strip()] = numbers
    return bands


def _below(values: tuple[str, ...]) -> dict[str, float]:
    below = dict(DEFAULT_BELOW)
    for text in values:
        name, sep, value = text.partition("=")
        try:
            threshold = float(value)
        except ValueError:
            threshold = math.nan
        if not sep or not name.strip() or not math.isfinite(threshold):
            raise ConfigError("--below", f'expected FIELD=NUMBER, got "{text}"')
        below[name.strip()] = threshold
    return below


def _only(stats: dict[str, Any], fields: str | None) -> dict[str, Any]:
    """Keep only the named fields' figures (and each group's own)."""
    if not fields:
        return stats
    names = {f.strip() for f in fields.split(",") if f.strip()}
    if not names:
        raise ConfigError("--fields", "expected a comma-separated list of field names")
    groups = []
    for group in stats["groups"]:
        kept_fields = {k: v for k, v in group["fields"].items() if k in names}
        kept_text = {k: v for k, v in group["text"].items() if k in names}
        if kept_fields or kept_text:
            groups.append({**group, "fields": kept_fields, "text": kept_text})
    if not groups:
        raise ConfigError("--fields", f"no group of {stats['file']} has {', '.join(sorted(names))}")
    return {**stats, "groups": groups}


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


@click.command("stats")
@click.argument("file", type=FILE)
@click.option("--compare", "other", type=FILE, help="Put a second file's figures beside.")
@click.option(
    "--columns",
    metavar="NAME=COLUMN,...",
    help="For CSV: which column holds device_id, ts, device_type, kind or a field "
    "(e.g. device_id=Serial,ts=Date,rehs=Score).",
)
@click.option("--device-type", metavar="NAME", help="For CSV without a device_type column.")
@click.option("--kind", metavar="NAME", help="For CSV without a kind column (e.g. daily).")
@click.option(
    "--bands",
    multiple=True,
    metavar="FIELD=EDGE,...",
    help="Band shares of a field, cut at these edges [default: rehs=90,80,60,40].",
)
@click.option(
    "--below",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Spells of days whose daily mean is under VALUE [default: rehs=60].",
)
@click.option("--fields", metavar="LIST", help="Only these fields' figures.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--markdown", "as_markdown", is_flag=True, help="Print a Markdown table.")
@click.option("--html", type=FILE, help="Write a page with histograms and example series.")
def stats_command(
    file: Path,
    other: Path | None,
    columns: str | None,
    device_type: str | None,
    kind: str | None,
    bands: tuple[str, ...],
    below: tuple[str, ...],
    fields: str | None,
    as_json: bool,
    as_markdown: bool,
    html: Path | None,
) -> None:
    """The statistics of a telemetry file (JSON Lines: barnstorm's --output history or one
    message per line; or CSV with --columns), per device type and kind: value
    distributions, band shares, missing shares, day-to-day change, lag-1 autocorrelation,
    spells below a threshold, episodes per device-year, message intervals and gaps.

    Point it at an export of your production data and at a simulated history of the same
    length (--compare) to see where the fleet differs."""
    if as_json and as_markdown:
        raise ConfigError("--markdown", "give --json or --markdown, not both")
    options = Options(bands=_bands(bands), below=_below(below))
    column_map = parse_columns(columns)
    first = _only(measure(_read(file, column_map, device_type, kind), options), fields)
    second = None
    if other is not None:
        second = _only(measure(_read(other, column_map, device_type, kind), options), fields)
    if html is not None:
        try:
            html.parent.mkdir(parents=True, exist_ok=True)
            html.write_text(render_stats_html(first, second), encoding="utf-8")
        except OSError as exc:
            raise ConfigError("--html", f"cannot write {html} ({exc.strerror})") from None
    if as_json:
        out: dict[str, Any] = first if second is None else {"first": first, "second": second}
        if second is not None:
            out["changes"] = [
                {"figure": k, "first": a, "second": b, "change": c}
                for k, a, b, c in rows(first, second)
            ]
        click.echo(json.dumps(_json_safe(out), indent=1, ensure_ascii=False))
    elif as_markdown:
        click.echo(markdown(first, second), nl=False)
    else:
        _print(first, second)


def _read(path: Path, columns: dict[str, str], device_type: str | None, kind: str | None) -> Any:
    if not path.is_file():
        raise ConfigError(str(path), "no such file")
    data = read_file(path, columns, device_type, kind)
    if not data.groups:
        raise ConfigError(
            str(path),
            "no message with a device_id in it (JSON Lines of messages, barnstorm's "
            "--output history, or CSV with --columns device_id=COLUMN,ts=COLUMN)",
        )
    return data


def _print(first: dict[str, Any], second: dict[str, Any] | None) -> None:
    console = Console()
    table = RichTable(title=first["file"] if second is None else None, box=None)
    table.add_column("figure")
    if second is None:
        table.add_column("value", justify="right")
    else:
        table.add_column(Path(first["file"]).name, justify="right")
        table.add_column(Path(second["file"]).name, justify="right")
        table.add_column("change", justify="right")
    for key, a, b, c in rows(first, second):
        table.add_row(key, a, *(() if second is None else (b or "", c or "")))
    console.print(table)
    if first["unreadable"]:
        console.print(f"[yellow]{first['unreadable']:,} lines of {first['file']} unreadable[/]")
