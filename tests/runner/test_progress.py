"""Progress from the first seconds of a long job, in a CI log as on a terminal: a history
run over two processes and a run over two processes against the embedded default print a
merged progress line (how far, how fast, the bytes written or the connections) while they
run, and nothing under --quiet."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow  # whole runs over worker processes


def _watch(command: list[str]) -> tuple[list[tuple[float, str]], str, int]:
    """Run ``command``; its stderr lines with the seconds since start, stdout, exit code."""
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines: list[tuple[float, str]] = []
    out: list[str] = []

    def read_stderr() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append((time.monotonic() - started, line.rstrip("\n")))

    def read_stdout() -> None:
        assert process.stdout is not None
        out.append(process.stdout.read())

    readers = [threading.Thread(target=read_stderr), threading.Thread(target=read_stdout)]
    for reader in readers:
        reader.start()
    code = process.wait(timeout=300)
    for reader in readers:
        reader.join(10)
    return lines, "".join(out), code


def _count(line: str, word: str) -> int:
    """The number before ``word`` in a progress line (``1,234 sent``)."""
    found = re.search(rf"([\d,]+) {word}", line)
    assert found is not None, line
    return int(found[1].replace(",", ""))


def _first(lines: list[tuple[float, str]], text: str) -> tuple[float, str]:
    return next((at, line) for at, line in lines if text in line)


def test_a_history_over_two_processes_shows_progress_while_it_writes(tmp_path: Path) -> None:
    """The expected size first, then a merged line of the two processes (simulated time
    and share done, messages, rate, megabytes written, time left) about a second after the
    work starts, long before the run ends; the file is whole at the end."""
    output = tmp_path / "month.jsonl"
    lines, stdout, code = _watch(
        [
            *(sys.executable, "-m", "simulator", "--farms", "12", "--start", "2025-01-01"),
            *("--duration", "30d", "--speed", "max", "--output", str(output)),
            *("--processes", "2"),
        ]
    )
    assert code == 0, lines[-5:]
    sized, _ = _first(lines, "size: about")
    shown, line = _first(lines, "barnstorm: 2 processes")
    assert shown - sized < 5.0, (shown, sized)  # about a second; generous for a busy machine
    for part in ("sim 2025-01-", "sent", "msg/s", "MB written"):
        assert part in line, line
    assert "total" in stdout
    assert output.stat().st_size > 100_000_000
    assert not list(tmp_path.glob(".month.jsonl.part*"))


def test_a_live_run_over_two_processes_shows_merged_progress() -> None:
    """Against the embedded default over two processes (15 s): merged lines with both
    processes' connections and messages while the run goes, the counts of the workers
    themselves (a board that stayed at zero would show none connected, none sent)."""
    lines, _, code = _watch(
        [
            *(sys.executable, "-m", "simulator", "--farms", "4", "--processes", "2"),
            *("--duration", "15m", "--speed", "60"),
        ]
    )
    assert code == 0, lines[-5:]
    _, line = _first(lines, "barnstorm: 2 processes")
    for part in ("connected", "sent", "failed/dropped", "p95"):
        assert part in line, line
    shown = [line for _, line in lines if line.startswith("barnstorm: 2 processes")]
    counts = [(_count(line, "connected"), _count(line, "sent")) for line in shown]
    assert any(connected > 0 and sent > 0 for connected, sent in counts), shown


def test_quiet_means_no_progress(tmp_path: Path) -> None:
    """--quiet: no progress line, only the summary at the end."""
    lines, stdout, code = _watch(
        [
            *(sys.executable, "-m", "simulator", "--farms", "4", "--duration", "3d"),
            *("--speed", "max", "--output", str(tmp_path / "h.jsonl"), "--processes", "2"),
            "--quiet",
        ]
    )
    assert code == 0
    assert not [line for _, line in lines if line.startswith("barnstorm:")]
    assert "total" in stdout


def test_a_large_fleet_listing_shows_its_progress(tmp_path: Path) -> None:
    """simulate fleet of 5,000 farms (seconds of work): a line of farms built (count,
    share, rate) while it builds; with --quiet, none; the listing is whole either way."""
    command = [
        *(sys.executable, "-m", "simulator", "fleet", "--farms", "5000", "--format", "csv"),
        *("--output", str(tmp_path / "fleet.csv")),
    ]
    lines, _, code = _watch(command)
    assert code == 0, lines[-5:]
    _, line = _first(lines, "barnstorm: ")
    assert "/5,000 (" in line or "listing devices" in line, line
    assert "/s" in line
    rows = (tmp_path / "fleet.csv").read_text().count("\n")
    quiet, _, code = _watch([*command, "--quiet"])
    assert code == 0
    assert not [line for _, line in quiet if line.startswith("barnstorm:")]
    assert (tmp_path / "fleet.csv").read_text().count("\n") == rows > 100_000
