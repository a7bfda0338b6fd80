"""barnstorm's own books: at the end of a run every message sent is settled or still held by
its transport, by the transport's own count; anything else fails the run as a defect, and
is never passed off as "in flight"."""

from __future__ import annotations

import pytest

from simulator.exitcodes import EXIT_FAILED, EXIT_OK
from simulator.messages import Message
from simulator.runner.config import FleetConfig, OutputConfig, RunConfig, TargetConfig, TimingConfig
from simulator.runner.main import run_blocking
from simulator.transports.memory import MemoryTransport
from simulator.units import parse_instant

A_DAY = RunConfig(
    fleet=FleetConfig(farms=2, clean=True),
    timing=TimingConfig(start=parse_instant("2026-03-01"), duration=86400.0, speed=None),
    target=TargetConfig(memory=True),
    outputs=OutputConfig(live=False),
)


def test_a_run_whose_transport_settles_everything_balances() -> None:
    """The memory transport settles every message: nothing is held at the end and nothing
    is unaccounted; the run passes."""
    result = run_blocking(A_DAY, summary=False)
    totals = result.report["totals"]
    assert result.exit_code == EXIT_OK
    assert totals["sent"] == totals["acknowledged"] > 0
    assert totals["in_flight"] == totals["unaccounted"] == 0


def test_a_message_the_transport_forgets_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A transport that takes messages and neither settles nor holds them (a defect, made
    here by a memory transport that forgets every 50th message of a tick): the report
    counts them as unaccounted, not in flight, and the run fails saying so."""
    forgotten = 0

    def forgetful(self: MemoryTransport, messages: list[Message]) -> None:
        nonlocal forgotten
        kept = [m for i, m in enumerate(messages) if i % 50 != 49]
        lost = [m for i, m in enumerate(messages) if i % 50 == 49]
        self.sink.messages_sent(lost)  # handed over, then forgotten
        forgotten += len(lost)
        self.sink.messages_written(kept)

    monkeypatch.setattr(MemoryTransport, "send_many", forgetful)
    result = run_blocking(A_DAY, summary=False)
    totals = result.report["totals"]
    assert forgotten > 0
    assert result.exit_code == EXIT_FAILED
    assert totals["unaccounted"] == forgotten
    assert totals["in_flight"] == 0
    assert (
        f"{forgotten:,} of {totals['sent']:,} messages are unaccounted for"
        in (result.report["error"])
    )
