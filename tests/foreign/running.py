"""The foreign test backend as a process on a free port, stopped on the way out."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from simulator.backend.broker import free_port
from tests.conftest import wait_listening
from tests.helpers import ROOT


@contextlib.contextmanager
def foreign_app(database: Path, *args: str) -> Iterator[str]:
    """``python -m tests.foreign.server`` over ``database`` with ``args``; its URL."""
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "tests.foreign.server", "--port", str(port)),
            *("--database", str(database), *args),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
