"""Fleet imperfections: what real devices get wrong, each at a rate a profile sets.

Clock drift (synced daily), duplicates (a QoS 1 resend repeats ``seq``), spikes (some
absurd), stuck sensors, missing fields, and firmware versions whose payloads differ.
``--clean`` turns every one of them off; the schedule's send jitter goes with them.

Everything here is vectorised per batch and deterministic: per-device traits come from
a seeded generator, per-day traits (a sensor stuck today) from a hash of device, field
and day, so they are the same whichever tick a message falls in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from simulator.arrays import SECONDS_PER_DAY, FloatArray, IntArray, hash_uniform
from simulator.tomlfile import Table

#: values a broken sensor or a firmware bug really sends.
ABSURD_VALUES = np.array([-999.0, 9999.0, 6553.5, -273.2, 0.0, 32767.0])


@dataclass(frozen=True)
class Imperfections:
    """Rates of a profile's imperfections (all zero with ``--clean``)."""

    clock_drift_ppm: float = 0.0
    duplicate_rate: float = 0.0
    spike_rate: float = 0.0
    absurd_share: float = 0.25
    stuck_rate_per_day: float = 0.0
    missing_field_rate: float = 0.0

    @classmethod
    def load(cls, table: Table) -> Imperfections:
        table.check_keys(
            {
                "clock_drift_ppm",
                "duplicate_rate",
                "spike_rate",
                "absurd_share",
                "stuck_rate_per_day",
                "missing_field_rate",
            }
        )
        return cls(
            clock_drift_ppm=table.number("clock_drift_ppm", 0.0, min=0.0, max=1000.0),
            duplicate_rate=table.number("duplicate_rate", 0.0, min=0.0, max=1.0),
            spike_rate=table.number("spike_rate", 0.0, min=0.0, max=1.0),
            absurd_share=table.number("absurd_share", 0.25, min=0.0, max=1.0),
            stuck_rate_per_day=table.number("stuck_rate_per_day", 0.0, min=0.0, max=1.0),
            missing_field_rate=table.number("missing_field_rate", 0.0, min=0.0, max=1.0),
        )


@dataclass(frozen=True)
class FirmwareVariant:
    """How one firmware version's payload differs from the profile's fields."""

    omit: frozenset[str] = frozenset()
    rename: dict[str, str] = field(default_factory=dict)
    #: "iso" (2026-01-01T00:00:00.000Z) or "epoch" (seconds since 1970, an integer).
    ts_format: str = "iso"

    @classmethod
    def load(cls, table: Table, fields: set[str]) -> FirmwareVariant:
        table.check_keys({"omit", "rename", "ts_format"})
        omit = table.string_list("omit", [])
        omit_set = set(omit)
        for name in omit:
            if name not in fields:
                raise table.error("omit", f'"{name}" is not a field of this profile')
        rename_table = table.table("rename", required=False)
        rename = {}
        for name in rename_table:
            if name not in fields:
                raise rename_table.error(name, "is not a field of this profile")
            rename[name] = rename_table.string(name)
        # A payload holds each name once: a field renamed onto another would send two
        # values under one key.
        kept = fields - omit_set - rename.keys()
        taken: set[str] = set()
        for name, new in rename.items():
            if new in kept or new in taken:
                raise rename_table.error(name, f'"{new}" is a name the payload already has')
            taken.add(new)
        ts_format = table.string("ts_format", "iso")
        if ts_format not in ("iso", "epoch"):
            raise table.error("ts_format", f'expected "iso" or "epoch", got "{ts_format}"')
        return cls(frozenset(omit_set), rename, ts_format)


class DeviceFlaws:
    """The per-device state of one profile's imperfections in one run."""

    def __init__(
        self,
        rates: Imperfections,
        fleet_size: int,
        devices: IntArray,
        rng: np.random.Generator,
        seed: int,
    ) -> None:
        self.rates = rates
        self.seed = seed
        self.drift = np.zeros(fleet_size)
        self.drift[devices] = rng.uniform(-1.0, 1.0, len(devices)) * rates.clock_drift_ppm * 1e-6
        self.sync_phase = np.zeros(fleet_size)
        self.sync_phase[devices] = rng.uniform(0.0, SECONDS_PER_DAY, len(devices))
        #: per field: the last reading each device sent, for stuck sensors.
        self.last: dict[str, FloatArray] = {}

    def clock_error(self, devices: IntArray, times: FloatArray) -> FloatArray:
        """Seconds each device's clock is off at ``times`` (drift since its last daily sync)."""
        if not self.rates.clock_drift_ppm:
            return np.zeros(len(devices))
        since_sync = np.mod(times - self.sync_phase[devices], SECONDS_PER_DAY)
        return np.asarray(self.drift[devices] * since_sync, np.float64)

    def apply(
        self,
        name: str,
        index: int,
        devices: IntArray,
        times: FloatArray,
        values: FloatArray,
        rng: np.random.Generator,
    ) -> FloatArray:
        """Spikes and stuck readings for one numeric field of a batch."""
        rates = self.rates
        if rates.stuck_rate_per_day:
            last = self.last.setdefault(name, np.full(len(self.drift), np.nan))
            day = np.floor(times / SECONDS_PER_DAY).astype(np.int64)
            stuck = hash_uniform(self.seed, index, devices, day) < rates.stuck_rate_per_day
            stuck &= ~np.isnan(last[devices])
            values = np.where(stuck, last[devices], values)
            fresh = ~stuck & ~np.isnan(values)
            last[devices[fresh]] = values[fresh]
        if rates.spike_rate:
            spikes = rng.random(len(values)) < rates.spike_rate
            if spikes.any():
                count = int(spikes.sum())
                absurd = rng.random(count) < rates.absurd_share
                scale = rng.uniform(2.0, 5.0, count) * rng.choice([-1.0, 1.0], count)
                spiked = np.where(
                    absurd,
                    rng.choice(ABSURD_VALUES, count),
                    values[spikes] + np.abs(values[spikes] * 0.5 + 1.0) * scale,
                )
                values = values.copy()
                values[spikes] = spiked
        return values

    def missing(
        self, count: int, fields: int, rng: np.random.Generator
    ) -> npt.NDArray[np.bool_] | None:
        """Which fields each message leaves out, or None when none does."""
        if not self.rates.missing_field_rate:
            return None
        mask = rng.random((count, fields)) < self.rates.missing_field_rate
        return mask if mask.any() else None

    def duplicates(self, count: int, rng: np.random.Generator) -> npt.NDArray[np.bool_] | None:
        """Which messages are sent twice (a resend that repeats ``seq``)."""
        if not self.rates.duplicate_rate:
            return None
        mask = rng.random(count) < self.rates.duplicate_rate
        return mask if mask.any() else None
