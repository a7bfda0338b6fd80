"""The realism page's figures (docs/realism.md), regenerated from the commands it shows.

    python docs/realism.py          # rewrite the table in docs/realism.md
    python docs/realism.py --check  # exit 1 if docs/realism.md's table is not what they print

Between ``<!-- realism:begin -->`` and ``<!-- realism:end -->`` docs/realism.md holds a code
block of ``simulate`` commands (a seeded year of the shipped fleet's daily scores, then
``simulate stats`` on it) and the Markdown table the last one printed. This script runs
those very commands in a scratch folder and puts their output in place, so the figures
are always what anyone running the commands gets.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- realism:begin -->"
END = "<!-- realism:end -->"
_BLOCK = re.compile(re.escape(BEGIN) + r"\n(?P<body>.*?)" + re.escape(END), re.S)


def commands(readme: str) -> list[list[str]]:
    """The ``simulate`` commands of the block's code fence, as argument lists."""
    match = _BLOCK.search(readme)
    if match is None:
        raise SystemExit(f"docs/realism.md has no {BEGIN} ... {END} block")
    fence = re.search(r"```(?:console|sh|bash)?\n(.*?)```", match["body"], re.S)
    if fence is None:
        raise SystemExit("the realism block has no code fence of commands")
    lines = [line.strip() for line in fence[1].splitlines() if line.strip()]
    return [shlex.split(line) for line in lines if line.startswith("simulate ")]


def table(readme: str) -> str:
    """The Markdown table in the block, as printed by the last command."""
    match = _BLOCK.search(readme)
    assert match is not None
    return "\n".join(line for line in match["body"].splitlines() if line.startswith("|")) + "\n"


def run(readme: str) -> str:
    """Run the block's commands in a scratch folder; the last one's standard output."""
    output = ""
    with tempfile.TemporaryDirectory() as folder:
        for argv in commands(readme):
            result = subprocess.run(
                [sys.executable, "-m", "simulator", *argv[1:]],
                cwd=folder,
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise SystemExit(f"{shlex.join(argv)} exited {result.returncode}:\n{result.stderr}")
            output = result.stdout
    return output


def main() -> int:
    path = ROOT / "docs" / "realism.md"
    readme = path.read_text(encoding="utf-8")
    printed = run(readme)
    if "--check" in sys.argv[1:]:
        if printed != table(readme):
            print("docs/realism.md's realism table differs from what its commands print")
            return 1
        return 0
    match = _BLOCK.search(readme)
    assert match is not None
    body = match["body"]
    first = body.index("\n|") + 1 if "\n|" in body else len(body)
    updated = body[:first] + printed
    path.write_text(readme[: match.start("body")] + updated + readme[match.end("body") :])
    print(f"docs/realism.md: realism table of {printed.count(chr(10)) - 2} figures")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
