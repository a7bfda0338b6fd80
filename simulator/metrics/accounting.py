"""Delivery accounting: which messages reached the far side, per device and ``seq``.

A :class:`DeliveryTracker` is fed what the target says it received (the reference
backend's read-back, which the embedded default runs behind its broker). Per device it
keeps the length of the gap-free run of ``seq`` received from 0 and the few received
beyond a gap, so memory stays flat while nothing is lost.
:meth:`DeliveryTracker.reconcile` compares that with what the engine sent and what the
transport reported failed or dropped: a message that was handed over and confirmed (or
sent at QoS 0) but never arrived is *lost*.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass
class Reconciliation:
    """The result of comparing what was sent with what was received."""

    expected: int
    received: int
    lost: int
    duplicated: int
    unexpected: int
    malformed: int
    #: received, but only after the run had finished sending (still arriving at its end).
    late: int = 0
    #: the first few (device_id, first_seq, last_seq) ranges that were lost.
    lost_ranges: list[tuple[str, int, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "expected": self.expected,
            "received": self.received,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "unexpected": self.unexpected,
            "malformed": self.malformed,
            "late": self.late,
            "lost_ranges": [
                {"device_id": d, "first_seq": a, "last_seq": b} for d, a, b in self.lost_ranges
            ],
        }


class DeliveryTracker:
    """Counts what arrived, by device and ``seq``."""

    def __init__(self, device_ids: Sequence[str]) -> None:
        self.index = {device_id: i for i, device_id in enumerate(device_ids)}
        self.device_ids = device_ids
        #: per device: every seq below this has arrived.
        self.contiguous = np.zeros(len(device_ids), np.int64)
        self.beyond: dict[int, set[int]] = {}
        self.received = 0
        self.duplicated = 0
        self.unexpected = 0
        self.malformed = 0

    def record(self, device: int, seq: int) -> None:
        run = int(self.contiguous[device])
        extra = self.beyond.get(device)
        if seq < run or (extra is not None and seq in extra):
            self.duplicated += 1
            return
        self.received += 1
        if seq != run:
            self.beyond.setdefault(device, set()).add(seq)
            return
        run += 1
        if extra:
            while run in extra:
                extra.discard(run)
                run += 1
            if not extra:
                del self.beyond[device]
        self.contiguous[device] = run

    def has(self, device: int, seq: int) -> bool:
        if seq < self.contiguous[device]:
            return True
        extra = self.beyond.get(device)
        return extra is not None and seq in extra

    def reconcile(
        self,
        next_seq: npt.NDArray[np.int64],
        devices: Sequence[int],
        not_delivered: set[tuple[int, int]],
        max_ranges: int = 10,
    ) -> Reconciliation:
        """Compare with the engine's per-device ``next_seq`` for the run's ``devices``."""
        undelivered = Counter(device for device, _ in not_delivered)
        expected = lost = 0
        ranges: list[tuple[str, int, int]] = []
        for device in devices:
            sent = int(next_seq[device])
            expected += sent - undelivered.get(device, 0)
            # Everything below the gap-free run arrived; look only beyond it.
            missing_candidates = range(int(self.contiguous[device]), sent)
            open_start: int | None = None
            for seq in missing_candidates:
                missing = not self.has(device, seq) and (device, seq) not in not_delivered
                if missing:
                    lost += 1
                    if open_start is None:
                        open_start = seq
                elif open_start is not None:
                    if len(ranges) < max_ranges:
                        ranges.append((self.device_ids[device], open_start, seq - 1))
                    open_start = None
            if open_start is not None and len(ranges) < max_ranges:
                ranges.append((self.device_ids[device], open_start, sent - 1))
        return Reconciliation(
            expected=expected,
            received=self.received,
            lost=lost,
            duplicated=self.duplicated,
            unexpected=self.unexpected,
            malformed=self.malformed,
            lost_ranges=ranges,
        )
