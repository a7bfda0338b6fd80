"""Respiratory health as an acoustic monitor hears it.

Coughs are counted per report interval from a negative binomial around a rate that
scales with the pigs the monitor hears, a healthy base rate per 100 pigs, a daily
cycle (quieter at night), the detector's sensitivity and a few false positives. Events
scale the latent ``cough_rate`` (coughs per hour); an outbreak is a multiplier on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simulator.arrays import FloatArray, IntArray, Values
from simulator.models.base import Batch, SignalModel, per_device, register
from simulator.tomlfile import Table

if TYPE_CHECKING:
    from simulator.fleet.build import Fleet

_TWO_PI = 2.0 * np.pi


def _range(table: Table, key: str, default: tuple[float, float]) -> tuple[float, float]:
    values = table.number_list(key, list(default))
    if len(values) != 2 or values[0] > values[1] or values[0] < 0:
        raise table.error(key, "expected [low, high] with 0 <= low <= high")
    return values[0], values[1]


def pigs_heard(fleet: Fleet, devices: IntArray) -> FloatArray:
    """Pigs each monitor hears: its room's pigs shared among the room's monitors of its type."""
    rooms = fleet.devices.room[devices]
    types = fleet.devices.type[devices]
    heard = np.zeros(len(devices), np.float64)
    for code in np.unique(types):
        # Count every monitor of this type in the room, including any a filtered run skips.
        same = np.flatnonzero((fleet.devices.type == code) & (fleet.devices.room >= 0))
        monitors = np.bincount(fleet.devices.room[same], minlength=fleet.rooms.count)
        mask = (types == code) & (rooms >= 0)
        heard[mask] = fleet.rooms.pigs[rooms[mask]] / np.maximum(monitors[rooms[mask]], 1)
    return heard


def outbreak_multiplier(batch: Batch) -> FloatArray:
    """How many times its healthy rate each monitor's room coughs now (1: healthy)."""

    def compute() -> FloatArray:
        if batch.context is None:
            natural = np.ones(len(batch))
        else:
            natural = batch.context.outbreaks.multiplier(batch)
        return batch.modulate("outbreak", natural)

    return batch.cached("outbreak", compute)


def smoothed_multiplier(
    batch: Batch,
    days: tuple[float, ...] = (0.25, 0.75, 1.5, 2.5),
    weights: tuple[float, ...] = (0.35, 0.3, 0.2, 0.15),
) -> FloatArray:
    """The outbreak multiplier averaged over the past few days (what a daily score sees)."""
    total = np.zeros(len(batch))
    for back, weight in zip(days, weights, strict=True):
        total += weight * outbreak_multiplier(batch.shifted(back * 86400.0))
    return total


@register("cough_count")
class CoughCount(SignalModel):
    """Coughs detected in one report interval (an integer)."""

    output = "i"
    params = frozenset(
        {
            "per_100_pigs_per_hour",
            "sensitivity",
            "false_positives_per_hour",
            "dispersion",
            "night_factor",
            "peak_hour",
        }
    )

    def __init__(self, table: Table) -> None:
        super().__init__(table)
        self.base = _range(table, "per_100_pigs_per_hour", (5.0, 25.0))
        self.sensitivity = _range(table, "sensitivity", (0.5, 0.9))
        self.false_positives = table.number("false_positives_per_hour", 0.5, min=0.0)
        self.dispersion = table.number("dispersion", 4.0, min=0.01)
        self.night_factor = table.number("night_factor", 0.4, min=0.0, max=1.0)
        self.peak_hour = table.number("peak_hour", 14.0, min=0.0, max=24.0)
        self.per_hour = np.zeros(0)

    def bind(self, fleet: Fleet, devices: IntArray, rng: np.random.Generator) -> None:
        base = rng.uniform(*self.base, len(devices))
        sensitivity = rng.uniform(*self.sensitivity, len(devices))
        #: the healthy rate each monitor detects at the daily mean, coughs per hour
        self.per_hour = per_device(
            fleet, devices, pigs_heard(fleet, devices) / 100.0 * base * sensitivity
        )

    def rate(self, batch: Batch) -> FloatArray:
        """Coughs per hour the monitor detects now, before false positives."""
        daily = 1.0 + self.night_factor * np.cos(
            _TWO_PI * (batch.local_hour() - self.peak_hour) / 24.0
        )
        rate = self.per_hour[batch.devices] * daily * batch.occupied() * outbreak_multiplier(batch)
        return batch.modulate("cough_rate", np.asarray(rate, np.float64))

    def generate(self, batch: Batch) -> Values:
        hours = batch.interval / 3600.0
        mean = (self.rate(batch) + self.false_positives) * hours
        k = self.dispersion
        return batch.rng.negative_binomial(k, k / (k + mean)).astype(np.float64)


@register("respiratory_score")
class RespiratoryScore(SignalModel):
    """The daily respiratory health score, 1–99 (lower is worse), null while collecting data.

    The score follows the room's cough rate relative to its healthy baseline, smoothed
    over the past days: near ``median`` when healthy, falling by ``per_doubling`` points
    each time the rate doubles. It is null (``blue``) while the room is empty, for
    ``collecting_days`` after placement, and on a share of days a device is offline.
    """

    output = "i"
    params = frozenset({"median", "spread", "per_doubling", "collecting_days", "offline_share"})

    def __init__(self, table: Table) -> None:
        super().__init__(table)
        self.median = table.number("median", 96.0, min=1.0, max=99.0)
        self.spread = table.number("spread", 0.6, min=0.0)
        self.per_doubling = table.number("per_doubling", 42.0, min=0.0)
        self.collecting = table.number("collecting_days", 3.0, min=0.0)
        self.offline = table.number("offline_share", 0.0, min=0.0, max=1.0)

    def generate(self, batch: Batch) -> Values:
        gap = 100.0 - self.median
        ratio = np.maximum(smoothed_multiplier(batch), 1.0)
        score = 100.0 - gap * batch.rng.lognormal(0.0, self.spread, len(batch))
        score -= self.per_doubling * np.log2(ratio)
        score = np.clip(np.round(batch.modulate("respiratory_score", score)), 1.0, 99.0)
        scoring = batch.occupied() & (batch.batch_age_days() >= self.collecting)
        scoring &= batch.rng.random(len(batch)) >= self.offline
        return np.where(scoring, score, np.nan)
