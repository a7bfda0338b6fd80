"""The reference backend's store: SQLite files that several backend processes open at once."""

from __future__ import annotations

import multiprocessing
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from simulator.backend.store import Database

PROCESSES = 4


def _open(path: str, start: Barrier, outcomes: Queue[str]) -> None:
    start.wait()
    try:
        database = Database(path)
        mode = database.execute("PRAGMA journal_mode").fetchone()[0]
        outcomes.put(f"opened, {mode}")
    except Exception as exc:  # reported to the test, whatever it is
        outcomes.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.slow
def test_processes_opening_a_new_file_at_once_all_open_it_in_wal_mode(tmp_path: Path) -> None:
    """Four processes that open the same new SQLite file at the same instant, 25 times
    over, all get it, in WAL mode: the one that loses the race to switch the file to WAL
    tries again instead of failing with "database is locked" (it did in about one start
    in twenty)."""
    context = multiprocessing.get_context("fork")
    outcomes: list[str] = []
    for trial in range(25):
        start = context.Barrier(PROCESSES)
        queue: Queue[str] = context.Queue()
        path = str(tmp_path / f"store-{trial}.db")
        workers = [
            context.Process(target=_open, args=(path, start, queue)) for _ in range(PROCESSES)
        ]
        for worker in workers:
            worker.start()
        outcomes += [queue.get(timeout=30) for _ in workers]
        for worker in workers:
            worker.join(timeout=30)
    assert outcomes == ["opened, wal"] * (25 * PROCESSES)
