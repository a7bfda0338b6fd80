"""What offline devices keep to send later (a network outage, a power loss): bounded per
device, oldest dropped first, released at each device's backfill rate once it is back.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from simulator.arrays import FloatArray
from simulator.messages import Message


class OfflineBuffers:
    """What offline devices keep to send later: bounded per device, oldest dropped first."""

    def __init__(self, capacity: npt.NDArray[np.int64], rate_per_s: FloatArray) -> None:
        self.capacity = capacity
        self.rate = rate_per_s
        self.pending: dict[int, deque[Message]] = {}
        self.credit: dict[int, float] = {}

    def __len__(self) -> int:
        return sum(len(queue) for queue in self.pending.values())

    def add(self, message: Message) -> Message | None:
        """Keep ``message``; return the one that fell out of a full buffer, if any."""
        queue = self.pending.setdefault(message.device, deque())
        if self.capacity[message.device] <= 0:
            return message
        queue.append(message)
        if len(queue) > self.capacity[message.device]:
            return queue.popleft()
        return None

    def release(
        self, online: Callable[[list[int]], npt.NDArray[np.bool_]], elapsed: float
    ) -> list[Message]:
        """Messages online devices may send now, at their backfill rate."""
        devices = [d for d, queue in self.pending.items() if queue]
        if not devices:
            return []
        released: list[Message] = []
        for device, ok in zip(devices, online(devices).tolist(), strict=True):
            if not ok:
                self.credit.pop(device, None)
                continue
            credit = self.credit.get(device, 1.0) + elapsed * float(self.rate[device])
            queue = self.pending[device]
            count = min(int(credit), len(queue))
            released.extend(queue.popleft() for _ in range(count))
            self.credit[device] = credit - count
            if not queue:
                del self.pending[device]
                self.credit.pop(device, None)
        return released
