"""The lines a run that got nothing through prints, and the --max-failed verdict."""

from __future__ import annotations

from collections import Counter
from typing import Any

from simulator.metrics.metrics import Counts
from simulator.runner.delivery import FailedShare, Ramp, nothing_accepted, nothing_sent
from simulator.runner.shards import merge_reports


def test_the_hint_follows_the_error_that_failed_the_most_messages() -> None:
    """With 404s the most common error, the line names the ingest path; it lists the
    kinds with their counts and the target it talked to."""
    line = nothing_accepted(12, Counter({"http_404": 10, "timeout": 2}), "http://h/ingst")
    assert line.startswith("none of the 12 messages sent was accepted by http://h/ingst")
    assert "(http_404 10, timeout 2)" in line
    assert line.endswith("The reference backend ingests at /ingest")
    refused = nothing_accepted(3, Counter({"tls": 3}), None)
    assert refused == (
        "none of the 3 messages sent was accepted (tls 3): is its certificate signed by a CA "
        "you trust? Give --ca-file, or --insecure"
    )


def test_an_unfinished_ramp_and_an_empty_window_are_told_apart() -> None:
    """Devices that never started: the ramp was too short for the real time the run had;
    every device started but none sent: the window was shorter than any interval."""
    ramp = Ramp(
        connections=103,
        devices=1406,
        started=40,
        duration=30,
        speed=60,
        shortest_interval=60,
        connect_rate=100,
    )
    line = nothing_sent(ramp)
    assert "ended before its devices were connected (40 of 1,406 devices had started)" in line
    assert "--duration 30s (0.5 s of real time)" in line
    assert "ramp of 103 connections" in line
    window = Ramp(
        connections=2, devices=2, started=2, duration=30, speed=None, shortest_interval=900
    )
    assert nothing_sent(window) == (
        "nothing was sent: nothing fell due in the run's 30s of simulated time; the chattiest "
        "messages of this fleet come every 15m: give a longer --duration"
    )


def test_a_ramp_that_had_time_but_connected_slowly_is_not_blamed_on_its_pace() -> None:
    """A ramp planned to take 54 ms of a 0.5 s run that still did not connect in time is
    blamed on slow connecting (a busy machine), not on its pace; a ramp planned longer
    than the run is."""
    slow = Ramp(
        connections=27,
        devices=100,
        started=10,
        duration=30,
        speed=60,
        shortest_interval=60,
        connect_rate=500,
    )
    line = nothing_sent(slow)
    assert "planned to take 0.05 s of the run's 0.5 s, but connecting took longer" in line
    assert "--connect-rate" not in line
    paced = Ramp(
        connections=1000,
        devices=1000,
        started=10,
        duration=30,
        speed=60,
        shortest_interval=60,
        connect_rate=500,
    )
    assert "is too short for a ramp of 1,000 connections" in nothing_sent(paced)
    assert "higher --connect-rate" in nothing_sent(paced)


def test_max_failed_holds_up_to_its_limit_and_breaks_above_it() -> None:
    """1 failure in 100 holds at 1 %, 2 do not; a run that sent nothing has no share."""
    assert FailedShare(1, 100, 0.01).held
    assert not FailedShare(2, 100, 0.01).held
    assert FailedShare(0, 0, 0.0).held
    assert FailedShare(2, 100, 0.01).as_dict() == {
        "failed": 2,
        "sent": 100,
        "share": 0.02,
        "limit": 0.01,
        "held": False,
    }


def test_what_a_devices_own_outage_cut_off_is_no_failure_of_the_target() -> None:
    """--max-failed judges the target: messages failed as cut_offline (their device went
    offline in a scenario before the receipt came) are failed on the books but not in the
    share, from the run's totals and from a merged report's dict alike; shards that met
    different error kinds keep every kind when merged."""
    totals = {"failed": 30, "sent": 1000, "errors": {"cut_offline": 25, "timeout": 5}}
    share = FailedShare.of(totals, 0.01)
    assert (share.failed, share.held) == (5, True)
    counts = Counts(sent=1000, failed=30, errors=Counter({"cut_offline": 25, "timeout": 5}))
    assert FailedShare.of(counts, 0.01) == share
    assert not FailedShare.of({**totals, "errors": {"timeout": 30}}, 0.01).held

    def report(errors: dict[str, int]) -> dict[str, Any]:
        failed = sum(errors.values())
        counts = {"sent": 10, "acknowledged": 10 - failed, "unconfirmed": 0, "failed": failed}
        return {
            "totals": {**counts, "errors": errors},
            "by_device_type": {},
            "connections": {},
            "fleet": {"devices_in_run": 1},
            "time": {"simulated_end": 0},
            "error": None,
            "outcome": "completed",
            "exit_code": 0,
            "max_failed": {"limit": 0.01},
        }

    merged = merge_reports([report({"timeout": 1}), report({"cut_offline": 3})], wall=1.0)
    assert merged["totals"]["errors"] == {"timeout": 1, "cut_offline": 3}
    assert merged["max_failed"]["failed"] == 1
