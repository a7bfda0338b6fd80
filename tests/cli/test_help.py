"""`simulate --help` lists every command, and each command (loaded only when used) answers
its own --help."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from simulator.cli.main import COMMANDS, main_group


def test_the_top_help_lists_every_command() -> None:
    """The commands the README names are all in `simulate --help`."""
    result = CliRunner().invoke(main_group, ["--help"], prog_name="simulate")
    assert result.exit_code == 0
    listed = result.output.split("Commands:")[1].split()
    for name in ("run", "soak", "fleet", "serve", "mixed", "capacity", "har2map", "stats"):
        assert name in listed
    assert set(COMMANDS) <= set(listed)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_loads_and_answers_its_help(name: str) -> None:
    """Each command's module loads on use and its --help starts with its own usage line."""
    result = CliRunner().invoke(main_group, [name, "--help"], prog_name="simulate")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith(f"Usage: simulate {name} [OPTIONS]")
