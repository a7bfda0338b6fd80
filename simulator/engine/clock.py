"""Clocks: the only place where the engine learns what time it is.

Simulated time is a float of seconds since the Unix epoch (UTC). Two clocks exist:

* :class:`ScaledClock` follows the wall clock, ``speed`` times faster (``speed=1`` is real
  time, ``speed=60`` runs one simulated hour per real minute). It also maps each
  simulated instant to the real monotonic instant at which it is due, so latency is
  measured from when a message *should* have been sent, not from when the engine got
  round to it (no coordinated omission).
* :class:`VirtualClock` jumps straight to the next instant anything is due: the
  as-fast-as-possible mode (``--speed max``) and the clock of unit tests, where a
  simulated week takes milliseconds.

Real time for latency comes from :meth:`Clock.monotonic`, and real waits (the connection
ramp, retries) go through :meth:`Clock.pause`, so nothing else in the engine reads the wall
clock or sleeps directly.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod


class Clock(ABC):
    """Where simulated time comes from and how the engine waits for it."""

    def __init__(self, start: float) -> None:
        self.start = start
        #: the largest delay seen between a due instant and the engine's wake-up (seconds
        #: of real time); a clock that lags tells the user the simulator is the bottleneck.
        self.max_lag = 0.0

    @abstractmethod
    def now(self) -> float:
        """Return the current simulated time (epoch seconds)."""

    @abstractmethod
    async def sleep_until(self, when: float) -> None:
        """Return once simulated time has reached ``when``."""

    @abstractmethod
    def due_at(self, when: float) -> float | None:
        """Real monotonic instant at which simulated ``when`` is due, or None without one."""

    @property
    @abstractmethod
    def speed(self) -> float | None:
        """Simulated seconds per real second, or None for as fast as possible."""

    @staticmethod
    def monotonic() -> float:
        """Real monotonic time in seconds, for measuring latency."""
        return time.monotonic()

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds`` of real time, whatever the speed: for rates of the target's
        world, which simulated time does not compress (the connection ramp, retries)."""
        await asyncio.sleep(seconds)


class ScaledClock(Clock):
    """Wall-clock time, ``speed`` times faster; ``speed=1`` is real time."""

    def __init__(self, start: float, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        super().__init__(start)
        self._speed = speed
        self._origin = self.monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        return self.start + (self.monotonic() - self._origin) * self._speed

    def due_at(self, when: float) -> float:
        return self._origin + (when - self.start) / self._speed

    async def sleep_until(self, when: float) -> None:
        delay = self.due_at(when) - self.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        lag = self.monotonic() - self.due_at(when)
        if lag > self.max_lag:
            self.max_lag = lag


class VirtualClock(Clock):
    """Simulated time that jumps to whatever is due next: as fast as possible."""

    def __init__(self, start: float) -> None:
        super().__init__(start)
        self._now = start

    @property
    def speed(self) -> None:
        return None

    def now(self) -> float:
        return self._now

    def due_at(self, when: float) -> None:
        return None

    async def sleep_until(self, when: float) -> None:
        if when > self._now:
            self._now = when
        # Let transports and metrics run between ticks, as they would in real time.
        await asyncio.sleep(0)
