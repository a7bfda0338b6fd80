"""Metrics: the one source of truth for the live view, the summary and the reports.

Transports report every message (sent, then its outcome) and every connection event
here; nothing else counts. Latency goes into log-linear histograms with a fixed number
of buckets (about 1 % precision from 1 µs to hours), so memory stays flat however long
a run lasts.

Latency of a message is measured from the instant the schedule intended it to leave
(not from when the engine got round to sending it), to its acknowledgement, or for
QoS 0 to the moment it was written to the socket. With ``--speed max`` there is no
intended real instant, so it is measured from the hand-over.
"""

from __future__ import annotations

import collections
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import numpy as np

from simulator.messages import BACKFILL, DUPLICATE, MALFORMED, Message, Outcome
from simulator.metrics.server_timing import ServerTimings
from simulator.metrics.server_timing import parse as parse_server_timing

#: what messages settled together are grouped by (a C-level getter: no Python per message).
_GROUP = attrgetter("type_code", "flags", "sent_at", "due")
_TYPE = attrgetter("type_code")
_FLAGS = attrgetter("flags")
_PAYLOAD = attrgetter("payload")
_SENT_AT = attrgetter("sent_at")
_DUE = attrgetter("due")


def _bytes_per_type(
    messages: list[Message], codes: list[int], per_type: Counter[int]
) -> dict[int, int]:
    """Payload bytes of ``messages`` by device type (``codes``: each one's type)."""
    sizes = map(len, map(_PAYLOAD, messages))
    if len(per_type) == 1:
        return {codes[0]: sum(sizes)}
    lengths = np.fromiter(sizes, np.int64, len(messages))
    totals: list[int] = np.bincount(codes, lengths).astype(np.int64).tolist()
    return {type_code: totals[type_code] for type_code in per_type}


def _consume(items: Iterable[object]) -> None:
    """Run ``items`` to its end, keeping nothing (in C)."""
    collections.deque(items, maxlen=0)


_SUB_BITS = 6  # 64 sub-buckets per power of two: values within ~1.6 %
_SUB = 1 << _SUB_BITS
_BUCKETS = 64 * _SUB


def _bucket(micros: int) -> int:
    if micros < 2 * _SUB:
        return max(micros, 0)
    shift = micros.bit_length() - _SUB_BITS - 1
    return min(shift * _SUB + (micros >> shift), _BUCKETS - 1)


def _bucket_value(index: int) -> int:
    """The lowest value (µs) that falls into bucket ``index``."""
    if index < 2 * _SUB:
        return index
    shift = index // _SUB - 1
    return (index - shift * _SUB) << shift


def bucket_percentile(counts: list[int], total: int, q: float, largest: float) -> float:
    """The ``q`` percentile (seconds) of histogram bucket ``counts`` holding ``total``
    values, none above ``largest`` (also of a window: the difference of two snapshots)."""
    if not total:
        return 0.0
    if q >= 1.0:
        return largest
    rank = max(1, int(q * total + 0.999999))
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= rank:
            # The middle of the bucket, never beyond the largest value seen.
            low = _bucket_value(index)
            high = _bucket_value(index + 1) if index + 1 < _BUCKETS else low
            return min((low + high) / 2e6, largest)
    return largest


class Histogram:
    """A latency histogram with fixed, log-linear buckets (values in seconds)."""

    __slots__ = ("counts", "max", "min", "total", "total_seconds")

    def __init__(self) -> None:
        self.counts = [0] * _BUCKETS
        self.total = 0
        self.total_seconds = 0.0
        self.max = 0.0
        self.min = float("inf")

    def record(self, seconds: float) -> None:
        self.counts[_bucket(int(seconds * 1e6))] += 1
        self.total += 1
        self.total_seconds += seconds
        if seconds > self.max:
            self.max = seconds
        if seconds < self.min:
            self.min = seconds

    def merge(self, other: Histogram) -> None:
        for i, count in enumerate(other.counts):
            if count:
                self.counts[i] += count
        self.total += other.total
        self.total_seconds += other.total_seconds
        self.max = max(self.max, other.max)
        self.min = min(self.min, other.min)

    def percentile(self, q: float) -> float:
        """The value (seconds) at or below which a share ``q`` (0–1) of the values lie."""
        return bucket_percentile(self.counts, self.total, q, self.max)

    def buckets_ms(self) -> list[list[float]]:
        """The histogram as ``[[value_ms, count], ...]`` for its buckets that hold values
        (each bucket's middle, never above the largest value), for reports: what the
        regression gate bounds a run's percentiles with."""
        pairs = []
        for index, count in enumerate(self.counts):
            if count:
                low = _bucket_value(index)
                high = _bucket_value(index + 1) if index + 1 < _BUCKETS else low
                pairs.append([round(min((low + high) / 2e3, self.max * 1000), 3), count])
        return pairs

    def summary_ms(self) -> dict[str, float]:
        """p50/p95/p99/max/mean in milliseconds."""
        mean = self.total_seconds / self.total if self.total else 0.0
        return {
            "p50": round(self.percentile(0.50) * 1000, 3),
            "p95": round(self.percentile(0.95) * 1000, 3),
            "p99": round(self.percentile(0.99) * 1000, 3),
            "max": round(self.max * 1000, 3),
            "mean": round(mean * 1000, 3),
        }


@dataclass
class Counts:
    """Message counts and latency for one device type (or the total)."""

    sent: int = 0
    acknowledged: int = 0
    unconfirmed: int = 0
    failed: int = 0
    dropped: int = 0
    bytes: int = 0
    #: resends that repeat a seq (counted apart: not in sent or its outcomes).
    duplicates: int = 0
    #: of those, the ones that went out (acknowledged, or handed over at QoS 0): what a
    #: subscriber or the target's store receives is these on top of what was delivered.
    duplicates_out: int = 0
    #: deliberately malformed payloads (part of sent).
    malformed: int = 0
    #: sent late from an offline device's buffer (part of sent).
    backfilled: int = 0
    #: requests sent again after the target asked to wait (429 with Retry-After), by
    #: reason; not part of sent: the message is counted once, with its final outcome.
    retried: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latency: Histogram = field(default_factory=Histogram)

    #: at the end of a run: what the transport itself still held (outstanding packet ids,
    #: queued requests, unwritten lines). None while the run goes on.
    held: int | None = None

    @property
    def settled(self) -> int:
        return self.acknowledged + self.unconfirmed + self.failed + self.dropped

    @property
    def in_flight(self) -> int:
        """While the run goes on, what is sent and not settled yet; at its end, what the
        transport says it still holds."""
        return self.sent - self.settled if self.held is None else self.held

    @property
    def unaccounted(self) -> int:
        """Sent, but neither settled nor held by the transport: a defect in barnstorm's own
        books, never a property of the target. Known only at the end of a run."""
        return 0 if self.held is None else self.sent - self.settled - self.held

    def add(self, other: Counts) -> None:
        self.sent += other.sent
        self.acknowledged += other.acknowledged
        self.unconfirmed += other.unconfirmed
        self.failed += other.failed
        self.dropped += other.dropped
        self.bytes += other.bytes
        self.duplicates += other.duplicates
        self.duplicates_out += other.duplicates_out
        self.malformed += other.malformed
        self.backfilled += other.backfilled
        self.retried.update(other.retried)
        self.errors.update(other.errors)
        self.latency.merge(other.latency)

    def as_dict(self, seconds: float) -> dict[str, Any]:
        delivered = self.acknowledged + self.unconfirmed
        return {
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "unconfirmed": self.unconfirmed,
            "failed": self.failed,
            "dropped": self.dropped,
            "in_flight": self.in_flight,
            "unaccounted": self.unaccounted,
            "bytes": self.bytes,
            "duplicates": self.duplicates,
            "duplicates_out": self.duplicates_out,
            "malformed": self.malformed,
            "backfilled": self.backfilled,
            "retried": dict(sorted(self.retried.items())),
            "rate_per_s": round(delivered / seconds, 3) if seconds > 0 else 0.0,
            "latency_ms": self.latency.summary_ms(),
            "latency_histogram": self.latency.buckets_ms(),
            "errors": dict(sorted(self.errors.items())),
        }


@dataclass
class ConnectionCounts:
    up: int = 0
    failed: int = 0
    lost: int = 0
    reconnected: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def connected(self) -> int:
        return self.up + self.reconnected - self.lost

    def as_dict(self) -> dict[str, Any]:
        return {
            "up": self.up,
            "failed": self.failed,
            "lost": self.lost,
            "reconnected": self.reconnected,
            "connected_at_end": self.connected,
            "errors": dict(sorted(self.errors.items())),
        }


class Metrics:
    """Listens to transports (a :class:`~simulator.transports.base.ResultSink`)."""

    def __init__(self, type_names: tuple[str, ...], *, track_undelivered: bool = False) -> None:
        self.type_names = type_names
        #: what the transport held at the end of the run, by its own count (see finish).
        self.held: int | None = None
        #: (device, seq) of every failed or dropped message, for delivery accounting.
        self.undelivered: set[tuple[int, int]] | None = set() if track_undelivered else None
        self.by_type = [Counts() for _ in type_names]
        self.connections = ConnectionCounts()
        self.started = time.monotonic()
        self.finished: float | None = None
        #: called with (message, outcome, error, latency in seconds or None) for every
        #: settled message: the Locust bridge streams these to Locust's request events.
        self.observer: Callable[[Message, Outcome, str | None, float | None], None] | None = None
        #: told at once of every batch of messages written locally (file, memory: sent and
        #: acknowledged, no latency), instead of ``observer`` once per message.
        self.written_observer: Callable[[list[Message]], None] | None = None
        #: the target's Server-Timing (HTTP ingest) by device type: over the run, and since
        #: the last time-series row.
        self.server_timings = ServerTimings()
        self.interval_timings = ServerTimings()
        #: also told every Server-Timing header (name, header, size, epoch seconds): the
        #: Locust bridge streams them to Locust's side.
        self.timing_observer: Callable[[str, str, int, float], None] | None = None

    # ResultSink ----------------------------------------------------------------------

    def message_sent(self, message: Message) -> None:
        message.sent_at = time.monotonic()
        counts = self.by_type[message.type_code]
        counts.bytes += len(message.payload)
        self._count_sent(counts, message)

    def _count_sent(self, counts: Counts, message: Message) -> None:
        flags = message.flags
        if flags:
            if flags & DUPLICATE:
                counts.duplicates += 1
                return
            if flags & BACKFILL:
                counts.backfilled += 1
                return  # counted as sent when its offline device buffered it
            if flags & MALFORMED:
                counts.malformed += 1
                if self.undelivered is not None:
                    # A broken payload cannot be read back: not expected at the far side.
                    self.undelivered.add((message.device, message.seq))
        counts.sent += 1

    def message_done(self, message: Message, outcome: Outcome, error: str | None = None) -> None:
        if message.flags & DUPLICATE:
            if outcome is Outcome.ACKNOWLEDGED or outcome is Outcome.UNCONFIRMED:
                self.by_type[message.type_code].duplicates_out += 1
            return
        counts = self.by_type[message.type_code]
        if outcome is Outcome.ACKNOWLEDGED:
            counts.acknowledged += 1
        elif outcome is Outcome.UNCONFIRMED:
            counts.unconfirmed += 1
        elif outcome is Outcome.FAILED:
            counts.failed += 1
        else:
            counts.dropped += 1
        if error is not None:
            counts.errors[error] += 1
            if self.undelivered is not None and outcome in (Outcome.FAILED, Outcome.DROPPED):
                self.undelivered.add((message.device, message.seq))
            if self.observer is not None:
                self.observer(message, outcome, error, None)
            return
        # From the due time (a late send is the generator's delay, and counts), or from the
        # send when a tick sent it a little early: whichever came first.
        due = message.due
        start = due if due is not None and due < message.sent_at else message.sent_at
        latency = max(time.monotonic() - start, 0.0)
        counts.latency.record(latency)
        if self.observer is not None:
            self.observer(message, outcome, None, latency)

    def message_retried(self, message: Message, reason: str) -> None:
        self.by_type[message.type_code].retried[reason] += 1

    def server_timing(self, type_code: int, header: str, size: int) -> None:
        """What the target said its time went to (HTTP ingest), by device type."""
        name = self.type_names[type_code] if 0 <= type_code < len(self.type_names) else "batch"
        now = time.time()
        parsed = parse_server_timing(header)
        self.server_timings.observe_parsed(name, parsed, size, now)
        self.interval_timings.observe_parsed(name, parsed, size, now)
        if self.timing_observer is not None:
            self.timing_observer(name, header, size, now)

    def messages_sent(self, messages: list[Message]) -> None:
        """Bulk :meth:`message_sent` of messages handed over together (one instant): the
        send instant set and the messages counted per type in passes that run in C; the
        few with flags (duplicates, backfill, malformed) then one by one."""
        if not messages:
            return
        now = time.monotonic()
        _consume(map(setattr, messages, itertools.repeat("sent_at"), itertools.repeat(now)))
        by_type = self.by_type
        codes = list(map(_TYPE, messages))
        per_type = Counter(codes)
        for type_code, n in per_type.items():
            by_type[type_code].sent += n
        if any(map(_FLAGS, messages)):
            for message in messages:
                if message.flags:
                    counts = by_type[message.type_code]
                    counts.sent -= 1  # counted above; _count_sent says whether it is sent
                    self._count_sent(counts, message)
        for type_code, nbytes in _bytes_per_type(messages, codes, per_type).items():
            by_type[type_code].bytes += nbytes

    def messages_done(self, messages: list[Message], outcome: Outcome) -> None:
        """Bulk :meth:`message_done` of messages settled together (one instant) without an
        error: acknowledged, or unconfirmed (handed to the network at QoS 0).

        Messages handed over together share their send instant, and at speed max their
        (absent) due time: then one latency holds for all and they are counted per type
        in C; otherwise per (type, flags, sent, due) group, each group's latency once."""
        if not messages:
            return
        if self.observer is not None:
            for message in messages:
                self.message_done(message, outcome)
            return
        now = time.monotonic()
        sent = set(map(_SENT_AT, messages))
        dues = set(map(_DUE, messages))
        if len(sent) != 1 or len(dues) != 1:
            for (type_code, flags, sent_at, due), n in Counter(map(_GROUP, messages)).items():
                if flags & DUPLICATE:
                    self.by_type[type_code].duplicates_out += n
                else:
                    self._settled(type_code, n, outcome, now, sent_at, due)
            return
        per_type = Counter(map(_TYPE, messages))
        if any(map(_FLAGS, messages)):
            for message in messages:
                if message.flags & DUPLICATE:
                    per_type[message.type_code] -= 1
                    self.by_type[message.type_code].duplicates_out += 1
        (sent_at,), (due,) = sent, dues
        for type_code, n in per_type.items():
            if n:
                self._settled(type_code, n, outcome, now, sent_at, due)

    def _settled(
        self,
        type_code: int,
        n: int,
        outcome: Outcome,
        now: float,
        sent_at: float,
        due: float | None,
    ) -> None:
        """``n`` messages of one type, sent at ``sent_at`` (due at ``due``), settled now."""
        counts = self.by_type[type_code]
        if outcome is Outcome.ACKNOWLEDGED:
            counts.acknowledged += n
        else:
            counts.unconfirmed += n
        latency = now - (due if due is not None and due < sent_at else sent_at)
        if latency < 0.0:
            latency = 0.0
        histogram = counts.latency
        histogram.counts[_bucket(int(latency * 1e6))] += n
        histogram.total += n
        histogram.total_seconds += latency * n
        if latency > histogram.max:
            histogram.max = latency
        if latency < histogram.min:
            histogram.min = latency

    def messages_written(self, messages: list[Message]) -> None:
        """Sent and acknowledged at once, without latency (a local write): counted per type
        in passes that run in C, the few with flags (duplicates ...) then one by one."""
        if any(map(_FLAGS, messages)):
            for message in messages:
                if message.flags:
                    self.message_sent(message)
                    self.message_done(message, Outcome.ACKNOWLEDGED)
            messages = [message for message in messages if not message.flags]
        if not messages:
            return
        codes = list(map(_TYPE, messages))
        per_type = Counter(codes)
        for type_code, nbytes in _bytes_per_type(messages, codes, per_type).items():
            counts = self.by_type[type_code]
            counts.sent += per_type[type_code]
            counts.acknowledged += per_type[type_code]
            counts.bytes += nbytes
        if self.written_observer is not None:
            self.written_observer(messages)
        elif self.observer is not None:
            for message in messages:
                self.observer(message, Outcome.ACKNOWLEDGED, None, 0.0)

    def connection_event(self, event: str, error: str | None = None) -> None:
        setattr(self.connections, event, getattr(self.connections, event) + 1)
        if error is not None:
            self.connections.errors[error] += 1

    # Reading -------------------------------------------------------------------------

    def totals(self) -> Counts:
        total = Counts()
        for counts in self.by_type:
            total.add(counts)
        # The transport counts what it holds as a whole, not per device type: the books are
        # checked on the total (per type, "in flight" stays what is not settled).
        total.held = self.held
        return total

    def elapsed(self) -> float:
        end = self.finished if self.finished is not None else time.monotonic()
        return end - self.started

    def finish(self, held: int | None = None) -> None:
        """The run is over; ``held``: what the transport still holds, by its own count."""
        self.finished = time.monotonic()
        self.held = held
