"""Settling many messages at once keeps the same books as settling them one by one."""

from __future__ import annotations

import time

import pytest

from simulator.messages import BACKFILL, DUPLICATE, MALFORMED, Message, Outcome
from simulator.metrics.metrics import Metrics

TYPES = ("cough_monitor", "climate_node", "gateway")


def _batch(one_instant: bool = False) -> list[Message]:
    """Messages of three types, some duplicates and backfilled ones: handed over at two
    instants, some with a due time (real time), or all at one instant without (speed max,
    the common case)."""
    now = time.monotonic()
    messages = []
    for i in range(600):
        due = None if i % 3 or one_instant else now - 0.001 * (i % 7)
        flags = DUPLICATE if i % 50 == 0 else BACKFILL if i % 41 == 0 else 0
        message = Message(i, i % 3, i, "summary", i, "t", b"{}", due, 0.0, flags)
        message.sent_at = now - (0.25 if i % 2 and not one_instant else 0.002)
        messages.append(message)
    return messages


@pytest.mark.parametrize("one_instant", [False, True], ids=["real-time", "speed-max"])
@pytest.mark.parametrize("outcome", [Outcome.ACKNOWLEDGED, Outcome.UNCONFIRMED])
def test_bulk_settling_keeps_the_books_of_one_by_one(
    outcome: Outcome, one_instant: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counts, duplicates and the latency histogram (every bucket, count, extremes, sum)
    of messages_done equal those of message_done per message, settled at one instant."""
    bulk, single = Metrics(TYPES), Metrics(TYPES)
    messages = _batch(one_instant)
    instant = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: instant)
    bulk.messages_done(messages, outcome)
    for message in messages:
        single.message_done(message, outcome)
    monkeypatch.undo()
    for ours, theirs in zip(bulk.by_type, single.by_type, strict=True):
        assert (ours.acknowledged, ours.unconfirmed, ours.duplicates_out) == (
            theirs.acknowledged,
            theirs.unconfirmed,
            theirs.duplicates_out,
        )
        assert ours.latency.total == theirs.latency.total > 0
        assert ours.latency.counts == theirs.latency.counts
        assert (ours.latency.max, ours.latency.min) == (theirs.latency.max, theirs.latency.min)
        assert ours.latency.total_seconds == pytest.approx(theirs.latency.total_seconds)
    assert sum(c.duplicates_out for c in bulk.by_type) == 12


@pytest.mark.parametrize("types", [(0, 1, 2), (1,)])
def test_bulk_sending_keeps_the_books_of_one_by_one(types: tuple[int, ...]) -> None:
    """Sent, bytes, duplicates, backfilled and malformed counts (and the read-back's list
    of what is not expected) of messages_sent equal those of message_sent per message,
    for a tick of several device types and of one; every message gets its send instant."""
    bulk = Metrics(TYPES, track_undelivered=True)
    single = Metrics(TYPES, track_undelivered=True)
    messages = [m for m in _batch() if m.type_code in types]
    for i, message in enumerate(messages):
        message.payload = b"x" * (10 + i % 13)
        if i % 37 == 0:
            message.flags = MALFORMED
    before = time.monotonic()
    bulk.messages_sent(messages)
    assert all(m.sent_at >= before for m in messages)
    for message in messages:
        single.message_sent(message)
    for ours, theirs in zip(bulk.by_type, single.by_type, strict=True):
        fields = ("sent", "bytes", "duplicates", "backfilled", "malformed")
        assert [getattr(ours, f) for f in fields] == [getattr(theirs, f) for f in fields]
    assert bulk.undelivered == single.undelivered
    assert sum(c.sent for c in bulk.by_type) > 0
    assert sum(c.malformed for c in bulk.by_type) > 0


def test_a_local_write_counts_every_message_sent_and_acknowledged_by_type() -> None:
    """messages_written (the file transport's) counts each plain message as sent and
    acknowledged with its bytes under its own type, and a flagged one as message_sent and
    message_done would: duplicates apart, malformed ones counted as such."""
    metrics = Metrics(TYPES)
    messages = _batch(one_instant=True)
    for i, message in enumerate(messages):
        message.payload = b"y" * (5 + i % 11)
        if i % 37 == 0:
            message.flags = MALFORMED
    metrics.messages_written(messages)
    for code, counts in enumerate(metrics.by_type):
        mine = [m for m in messages if m.type_code == code]
        # A backfilled message was counted as sent when its device buffered it.
        assert counts.sent == sum(1 for m in mine if not m.flags & (DUPLICATE | BACKFILL))
        assert counts.acknowledged == sum(1 for m in mine if not m.flags & DUPLICATE)
        assert counts.bytes == sum(len(m.payload) for m in mine)
        assert (
            counts.duplicates
            == counts.duplicates_out
            == sum(1 for m in mine if m.flags & DUPLICATE)
        )
        assert counts.malformed == sum(1 for m in mine if m.flags & MALFORMED)
