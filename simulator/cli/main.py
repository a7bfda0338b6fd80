"""The ``simulate`` command: a group of commands, one module each, with ``run`` as the
default (``simulate --farms 5`` is ``simulate run --farms 5``).

Errors become one line on stderr and an exit code: bad input (a flag, a file, a key) exits
2, a failed run 1.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from simulator import __version__
from simulator.cli.compare import compare_command
from simulator.cli.fleet import fleet_command
from simulator.cli.har import har2map_command
from simulator.cli.mixed import capacity_command, mixed_command
from simulator.cli.options import one_line
from simulator.cli.run import run_command, soak_command
from simulator.cli.serve import serve_command
from simulator.cli.stats import stats_command
from simulator.errors import BarnstormError, ConfigError
from simulator.exitcodes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE


class DefaultGroup(click.Group):
    """``simulate --farms 5`` means ``simulate run --farms 5``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (
            args[0] not in self.commands and args[0] not in ("--help", "-h", "--version")
        ):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="barnstorm")
def main_group() -> None:
    """barnstorm: virtual farms that stress-test a livestock-monitoring backend.

    With no target, `simulate --farms 500` starts an embedded MQTT broker and the reference
    backend on 127.0.0.1, publishes the fleet's telemetry, and checks that the backend
    stored every message. Point it at your own broker with --mqtt or ingest URL with
    --http, or write history with --output.

    `simulate` alone is `simulate run`: `simulate run --help` lists its options, and every
    command's --help lists its own.
    """


for command in (
    run_command,
    soak_command(),
    fleet_command,
    serve_command,
    mixed_command,
    capacity_command,
    har2map_command,
    stats_command,
    compare_command,
):
    main_group.add_command(command)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``simulate`` console script."""
    try:
        main_group.main(
            args=list(argv) if argv is not None else None,
            prog_name="simulate",
            standalone_mode=False,
        )
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        sys.exit(0)
    except click.UsageError as exc:
        hint = (
            f" (see simulate {exc.ctx.command.name} --help)"
            if exc.ctx and exc.ctx.command.name
            else ""
        )
        click.echo(f"simulate: error: {one_line(exc.format_message())}{hint}", err=True)
        sys.exit(EXIT_USAGE)
    except ConfigError as exc:
        click.echo(f"simulate: error: {one_line(str(exc))}", err=True)
        sys.exit(EXIT_USAGE)
    except BarnstormError as exc:
        click.echo(f"simulate: error: {one_line(str(exc))}", err=True)
        sys.exit(EXIT_FAILED)
    except click.exceptions.Abort:
        click.echo("simulate: aborted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
