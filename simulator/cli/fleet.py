"""``simulate fleet``: the fleet listed for other tools (dashboards, seeding scripts)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from simulator.cli.options import config_option, fleet_options, option
from simulator.errors import ConfigError
from simulator.fleet.listing import fleet_csv, fleet_json
from simulator.fleet.load import load_fleet
from simulator.fleet.topics import check_topic_template
from simulator.report.ticker import Ticker

#: a fleet this large shows its progress (it takes seconds to minutes).
LARGE = 1000


@click.command("fleet")
@config_option
@fleet_options
@option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True)
@option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    # BARNSTORM_OUTPUT is the history file of `simulate run`.
    envvar="BARNSTORM_FLEET_OUTPUT",
    help="Write to FILE instead of standard output.",
)
@option("--quiet", is_flag=True, help="No progress bar (shown for 1,000 farms or more).")
def fleet_command(
    farms: int,
    seed: int,
    farms_dir: Path | None,
    profiles_dir: Path | None,
    topic_template: str,
    fmt: str,
    output: Path | None,
    quiet: bool,
) -> None:
    """Print the fleet (farms, sites, rooms, devices, topics) as JSON or CSV."""
    check_topic_template(topic_template)
    # A large fleet takes minutes: a bar (or a line in a log) says how far it is.
    with Ticker("building farms", farms, enabled=farms >= LARGE and not quiet) as ticker:
        fleet, profiles = load_fleet(farms, seed, farms_dir, profiles_dir, built=ticker.advance)
        ticker.restart("listing devices", fleet.devices.count)
        render = fleet_json if fmt == "json" else fleet_csv
        text = render(fleet, profiles, topic_template, ticker.advance)
    text = text if text.endswith("\n") else text + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError("--output", f"cannot write {output}: {exc.strerror or exc}") from None
