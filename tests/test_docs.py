"""The documentation cannot drift from barnstorm: every ``simulate`` command the README and
the pages in docs/ show parses against the commands as they are (flags that exist, values
of the right kind), the blocks marked ``<!-- docs-test: run -->`` run as they stand, and
the README stays a five-minute read."""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from simulator.backend.broker import free_port
from simulator.cli.main import main_group
from tests.helpers import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
RUN_MARK = "<!-- docs-test: run -->"


def _blocks(page: Path) -> list[tuple[str, bool]]:
    """The page's shell blocks (fenced ``bash``, ``console`` or ``sh``, or a plain fence
    whose first line is a ``simulate`` command), and whether each is marked to run."""
    found = []
    lines = page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = re.fullmatch(r"```(\w*)\s*", lines[index])
        if not opening:
            index += 1
            continue
        end = next(
            (i for i in range(index + 1, len(lines)) if lines[i].strip() == "```"), len(lines)
        )
        body = "\n".join(lines[index + 1 : end])
        before = [line for line in lines[:index] if line.strip()]
        marked = bool(before) and before[-1].strip() == RUN_MARK
        shell = opening.group(1) in ("bash", "console", "sh")
        if shell or (not opening.group(1) and body.lstrip().startswith("simulate")):
            found.append((body, marked))
        index = end + 1
    return found


def _commands(block: str) -> list[str]:
    """The ``simulate`` commands of a block: continuation lines joined, comments and a
    trailing ``&`` dropped, environment assignments before the command left out."""
    joined = re.sub(r"\\\n\s*", " ", block)
    commands = []
    for line in joined.splitlines():
        line = line.split(" # ")[0].strip().removesuffix("&").strip()
        if line.startswith("#") or "simulate" not in line or "..." in line:
            continue
        words = shlex.split(line, comments=True)
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
            words.pop(0)
        if words and words[0] in ("simulate", ".venv/bin/simulate"):
            commands.append(shlex.join(words[1:]))
    return commands


def _all_commands() -> list[tuple[str, str]]:
    return [
        (f"{page.relative_to(ROOT)}", command)
        for page in PAGES
        for block, _ in _blocks(page)
        for command in _commands(block)
    ]


def test_the_docs_show_simulate_commands() -> None:
    """The collector finds the commands (a regex that matched nothing would pass every
    page): each main job's command is among them."""
    shown = {command.split()[0] if command else "run" for _, command in _all_commands()}
    assert {"mixed", "soak", "capacity", "compare", "har2map", "stats", "serve"} <= shown


@pytest.mark.parametrize(("page", "command"), _all_commands())
def test_every_command_the_docs_show_parses(page: str, command: str) -> None:
    """Each ``simulate`` command shown parses against the command it names: no flag
    that does not exist, no value of the wrong kind (files that exist only on the
    reader's machine aside)."""
    args = shlex.split(command)
    named = bool(args) and not args[0].startswith("-")
    name, rest = (args[0], args[1:]) if named else ("run", args)
    with click.Context(main_group, info_name="simulate") as ctx:
        sub = main_group.get_command(ctx, name)
        assert sub is not None, f"{page}: no command {name}"
        try:
            parsed = sub.make_context(f"simulate {name}", rest, parent=ctx)
            extra = [word.split("=")[0] for word in parsed.args if word.startswith("-")]
            unknown = [flag for flag in extra if flag not in _locust_flags()]
            assert not unknown, f"{page}: simulate {command}: neither barnstorm's nor Locust's"
        except click.BadParameter as exc:
            if "does not exist" not in str(exc):
                raise AssertionError(f"{page}: simulate {command}: {exc}") from None
        except click.UsageError as exc:
            raise AssertionError(f"{page}: simulate {command}: {exc}") from None


@functools.cache
def _locust_flags() -> set[str]:
    """Locust's own flags (``simulate mixed`` and ``capacity`` pass unknown ones to it),
    from its --help in a process of its own (importing Locust here would patch this one)."""
    done = subprocess.run(
        [sys.executable, "-m", "locust", "--help"], capture_output=True, text=True, timeout=60
    )
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", done.stdout))


def _runnable() -> list[tuple[str, str]]:
    return [
        (f"{page.relative_to(ROOT)}", block)
        for page in PAGES
        for block, marked in _blocks(page)
        if marked
    ]


def test_some_blocks_are_marked_to_run() -> None:
    """The reference backend's walk-through is among the blocks that run."""
    assert any("api/farms" in block for _, block in _runnable())


@pytest.mark.slow
@pytest.mark.parametrize(("page", "block"), _runnable())
def test_a_marked_block_runs_as_shown(tmp_path: Path, page: str, block: str) -> None:
    """A block marked to run runs with bash -e in an empty folder, with barnstorm's
    ``simulate`` on PATH and its ports moved to free ones: every command succeeds and no
    answer of the reference backend is an error."""
    port = str(free_port())
    script = block.replace("8080", port)
    jobs = "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", jobs + script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{page}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert '"error"' not in done.stdout, done.stdout[-2000:]


def test_the_readme_is_a_five_minute_read() -> None:
    """README.md stays under 300 lines: the rest belongs in docs/."""
    assert len((ROOT / "README.md").read_text().splitlines()) < 300
