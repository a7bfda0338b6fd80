"""The ``simulate`` command: a group of commands, one module each, with ``run`` as the
default (``simulate --farms 5`` is ``simulate run --farms 5``).

Errors become one line on stderr and an exit code: bad input (a flag, a file, a key) exits
2, a failed run 1.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import tempfile
import traceback
from collections.abc import Mapping, Sequence

import click

from simulator import __version__
from simulator.cli.options import one_line
from simulator.errors import BarnstormError, ConfigError
from simulator.exitcodes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE
from simulator.redact import protect, scrub

#: every command: its module and the name of the command there (or of a function that
#: makes it). A command's module is imported when that command runs or --help lists it,
#: so a run does not pay for the statistics, HAR or comparison pages at every start.
COMMANDS = {
    "run": ("simulator.cli.run", "run_command"),
    "soak": ("simulator.cli.run", "soak_command"),
    "fleet": ("simulator.cli.fleet", "fleet_command"),
    "serve": ("simulator.cli.serve", "serve_command"),
    "mixed": ("simulator.cli.mixed", "mixed_command"),
    "capacity": ("simulator.cli.mixed", "capacity_command"),
    "har2map": ("simulator.cli.har", "har2map_command"),
    "stats": ("simulator.cli.stats", "stats_command"),
    "compare": ("simulator.cli.compare", "compare_command"),
}


class DefaultGroup(click.Group):
    """``simulate --farms 5`` means ``simulate run --farms 5``; commands load on use."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in COMMANDS and args[0] not in ("--help", "-h", "--version")):
            args = ["run", *args]
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, name = COMMANDS[cmd_name]
        found = getattr(importlib.import_module(module), name)
        command = found if isinstance(found, click.Command) else found()
        assert isinstance(command, click.Command)
        return command


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


#: flags whose value is a secret (their environment variables are listed in SECRET_ENV).
SECRET_FLAGS = ("--password", "--token", "--readback-token")
#: environment variables whose value is a secret, whatever the command.
SECRET_ENV = re.compile(r"^BARNSTORM_.*(PASSWORD|TOKEN|SECRET|API_KEY)")


def guard_secrets(args: Sequence[str], environ: Mapping[str, str]) -> None:
    """Register every secret given on the command line or in the environment (flag values,
    URL passwords and secret query values) and scrub the standard streams, before anything
    can print them."""
    secrets: list[str] = []
    urls: list[str] = []
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if flag in SECRET_FLAGS:
            secrets.append(value if eq else (args[i + 1] if i + 1 < len(args) else ""))
        if "://" in arg:
            urls.append(value if eq and "://" in value else arg)
    for name, value in environ.items():
        if SECRET_ENV.match(name):
            secrets.append(value)
        elif name.startswith("BARNSTORM_") and "://" in value:
            urls.append(value)
    protect(secrets, urls)


def internal_error(exc: BaseException) -> None:
    """A defect in barnstorm: one line asking for a report, the traceback kept in a file
    (scrubbed of secrets) for that report. Exits 1."""
    trace = scrub("".join(traceback.format_exception(exc)))
    with tempfile.NamedTemporaryFile(
        "w", prefix="barnstorm-crash-", suffix=".txt", delete=False, encoding="utf-8"
    ) as handle:
        handle.write(trace)
    click.echo(
        f"simulate: internal error: {type(exc).__name__}: {one_line(str(exc))[:300]} "
        f"(a defect in barnstorm: please report it with {handle.name})",
        err=True,
    )
    sys.exit(EXIT_FAILED)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``simulate`` console script."""
    args = list(argv) if argv is not None else sys.argv[1:]
    guard_secrets(args, os.environ)
    try:
        main_group.main(
            args=args,
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
    except (KeyboardInterrupt, BrokenPipeError):
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        internal_error(exc)
