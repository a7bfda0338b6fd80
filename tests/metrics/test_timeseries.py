"""The time series' last row holds the run's own totals."""

from __future__ import annotations

from simulator.engine.clock import VirtualClock
from simulator.messages import Message, Outcome
from simulator.metrics.metrics import Metrics
from simulator.metrics.timeseries import RUNNING_COUNTS, Recorder


def _messages(first: int, count: int) -> list[Message]:
    return [Message(i, 0, i, "summary", i, "t", b"{}", None) for i in range(first, first + count)]


def test_what_the_run_settles_just_after_a_snapshot_is_in_the_last_row() -> None:
    """A run that ends as a snapshot falls due sends and settles its last messages a few
    milliseconds after it: closing the recorder then adds the row that holds them, so
    the series ends at the run's totals. Closing right after a snapshot with nothing new
    adds no second row of the same counts."""
    metrics = Metrics(("cough_monitor",))
    recorder = Recorder(metrics, VirtualClock(0.0), interval=60.0)
    early = _messages(0, 10)
    metrics.messages_sent(early)
    metrics.messages_done(early, Outcome.ACKNOWLEDGED)
    recorder.take()  # the snapshot that falls due as the run ends
    late = _messages(10, 9)
    metrics.messages_sent(late)
    metrics.messages_done(late[:7], Outcome.ACKNOWLEDGED)
    recorder.close()  # within milliseconds of the snapshot
    last, totals = recorder.rows[-1], metrics.totals()
    assert len(recorder.rows) == 2
    assert (last["sent"], last["delivered"], last["in_flight"]) == (19, 17, 2)
    assert last["sent"] == totals.sent
    assert last["delivered"] == totals.acknowledged

    quiet = Recorder(metrics, VirtualClock(0.0), interval=60.0)
    quiet.take()
    quiet.close()
    assert len(quiet.rows) == 1
    assert {key: quiet.rows[0][key] for key in RUNNING_COUNTS} == {
        key: last[key] for key in RUNNING_COUNTS
    }
