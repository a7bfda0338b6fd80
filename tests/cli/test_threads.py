"""The ``simulate`` command keeps to one thread at start: numpy's OpenBLAS pool, which
barnstorm never uses, is not started (it spins a tenth of a CPU-second per process).
Threads are counted in Linux's /proc, as on the machines the suite runs on."""

from __future__ import annotations

import os
import subprocess
import sys

# Every module a publishing run loads before it connects.
_LOADED = (
    "import os, simulator.cli.main, simulator.runner.main, simulator.engine.engine, "
    "simulator.transports.mqtt.factory; "
    "print(len(os.listdir('/proc/self/task')), os.environ.get('OPENBLAS_NUM_THREADS', 'unset'))"
)


def _started(env: dict[str, str]) -> tuple[int, str]:
    out = subprocess.run(
        [sys.executable, "-c", _LOADED], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[0]), out[1]


def test_a_fresh_simulate_process_runs_one_thread() -> None:
    """With no OpenBLAS setting of the user's, the modules of a run load with one thread
    (OpenBLAS would add one per further core) and the setting goes on to child processes."""
    env = {key: value for key, value in os.environ.items() if key != "OPENBLAS_NUM_THREADS"}
    assert _started(env) == (1, "1")


def test_a_users_openblas_setting_stays() -> None:
    """A value the user set is theirs: barnstorm does not overwrite it."""
    assert _started({**os.environ, "OPENBLAS_NUM_THREADS": "2"})[1] == "2"
