"""``simulate har2map``: a browser recording turned into a dashboard map for the users."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import click

from simulator.locust.dashboard_map import load_map
from simulator.locust.har import build_map, render


@click.command("har2map")
@click.argument("recording", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the map here (default: standard output).",
)
@click.option(
    "--gap",
    type=click.FloatRange(min=0.0),
    default=1.0,
    show_default=True,
    help="In a single-page app, a pause (seconds) that starts a new view.",
)
def har2map_command(recording: Path, output: Path | None, gap: float) -> None:
    """Turn a browser recording (HAR, e.g. Chrome DevTools' "Export HAR") into a dashboard
    map for the Locust users (BARNSTORM_DASHBOARD_MAP)."""
    draft = build_map(recording, gap)
    text = render(draft, str(recording))
    # The map must load as users will load it, its secrets' variables set or not (they are
    # set where it runs: here, a stand-in value each, only while it is checked).
    missing = {n for n in re.findall(r"\{env:(\w+)\}", text) if n not in os.environ}
    with tempfile.TemporaryDirectory() as folder:
        check = Path(folder) / "map.toml"
        check.write_text(text, encoding="utf-8")
        os.environ.update(dict.fromkeys(missing, "x"))
        try:
            loaded = load_map(check)
        finally:
            for name in missing:
                os.environ.pop(name, None)
    for warning in draft.warnings:
        click.echo(f"simulate har2map: {warning}", err=True)
    if output is None:
        click.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    requests = sum(len(v.requests) for v in loaded.views)
    click.echo(
        f"simulate har2map: wrote {output}: {len(loaded.views)} views, {requests} requests"
        + (", a login step" if loaded.login else ", no login step"),
        err=True,
    )
