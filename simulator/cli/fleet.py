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
def fleet_command(
    farms: int,
    seed: int,
    farms_dir: Path | None,
    profiles_dir: Path | None,
    topic_template: str,
    fmt: str,
    output: Path | None,
) -> None:
    """Print the fleet (farms, sites, rooms, devices, topics) as JSON or CSV."""
    check_topic_template(topic_template)
    fleet, profiles = load_fleet(farms, seed, farms_dir, profiles_dir)
    render = fleet_json if fmt == "json" else fleet_csv
    text = render(fleet, profiles, topic_template)
    text = text if text.endswith("\n") else text + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError("--output", f"cannot write {output}: {exc.strerror or exc}") from None
