"""Respiratory health as an acoustic monitor hears it.

Coughs are counted per report interval from a negative binomial around a rate that
scales with the pigs the monitor hears, a healthy base rate per 100 pigs, a daily
cycle (quieter at night), the detector's sensitivity and a few false positives. Events
scale the latent ``cough_rate`` (coughs per hour); an outbreak is a multiplier on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simulator.arrays import SECONDS_PER_DAY, FloatArray, IntArray, Values, hash_uniform
from simulator.models.base import Batch, SignalModel, per_device, register
from simulator.tomlfile import Table

if TYPE_CHECKING:
    from simulator.fleet.tables import Fleet

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
    days: tuple[float, ...] = (0.25, 0.75, 1.5),
    weights: tuple[float, ...] = (0.45, 0.35, 0.2),
) -> FloatArray:
    """The outbreak multiplier averaged over the past day and a half (what a daily score
    sees)."""
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


def _normal(*keys: IntArray | int) -> FloatArray:
    """A deterministic standard normal per element from integer keys (Box–Muller)."""
    u1 = 1.0 - hash_uniform(*keys, 1)
    u2 = hash_uniform(*keys, 2)
    return np.asarray(np.sqrt(-2.0 * np.log(u1)) * np.cos(_TWO_PI * u2), np.float64)


@register("respiratory_score")
class RespiratoryScore(SignalModel):
    """The daily respiratory health score, 1–99 (lower is worse), null while collecting data.

    The score reads the room's cough level against a reference, on a log scale: 99 at or
    below the reference, ``per_doubling`` points fewer for each doubling above it. The
    level is the outbreak multiplier smoothed over the past day and a half (what a daily
    score sees), times the device's own usual level (``level``: its room's dust and
    ventilation, its detector; mean and spread in doublings), a slow ``wander`` around it
    (``wander_sd`` doublings, new every ``wander_days``, smoothly joined) and the day's own
    counting noise (``daily_sd``). No parameter sets the median or the band shares: they
    come from how often and how far the level sits above the reference. The score is null
    (``blue``) while the room is empty, for ``collecting_days`` after placement, and on a
    share of days the device is offline (``offline_share``).
    """

    output = "i"
    params = frozenset(
        {
            "per_doubling",
            "level",
            "wander_sd",
            "wander_days",
            "daily_sd",
            "collecting_days",
            "offline_share",
        }
    )

    def __init__(self, table: Table) -> None:
        super().__init__(table)
        self.per_doubling = table.number("per_doubling", 50.0, min=0.0)
        level = table.number_list("level", [0.02, 0.08])
        if len(level) != 2 or level[1] < 0:
            raise table.error("level", "expected [mean, spread] in doublings, spread >= 0")
        self.level_mean, self.level_sd = level
        self.wander_sd = table.number("wander_sd", 0.11, min=0.0)
        self.wander_days = table.number("wander_days", 5.0, min=0.1)
        self.daily_sd = table.number("daily_sd", 0.07, min=0.0)
        self.collecting = table.number("collecting_days", 3.0, min=0.0)
        self.offline = table.number("offline_share", 0.0, min=0.0, max=1.0)
        self.level = np.zeros(0)
        self.salt = np.zeros(0, np.int64)

    def bind(self, fleet: Fleet, devices: IntArray, rng: np.random.Generator) -> None:
        level = rng.normal(self.level_mean, self.level_sd, len(devices))
        self.level = per_device(fleet, devices, level)
        salt = np.zeros(fleet.devices.count, np.int64)
        salt[devices] = rng.integers(0, 2**62, len(devices))
        self.salt = salt

    def wander(self, batch: Batch) -> FloatArray:
        """Each device's slow wander now, in doublings: normals at knots every
        ``wander_days``, joined by a smooth step that keeps the spread."""
        position = batch.times / (self.wander_days * SECONDS_PER_DAY)
        knot = np.floor(position).astype(np.int64)
        f = position - knot
        f = f * f * (3.0 - 2.0 * f)
        salt = self.salt[batch.devices]
        joined = (1.0 - f) * _normal(salt, knot) + f * _normal(salt, knot + 1)
        return np.asarray(self.wander_sd * joined / np.sqrt((1.0 - f) ** 2 + f**2), np.float64)

    def generate(self, batch: Batch) -> Values:
        level = np.log2(np.maximum(smoothed_multiplier(batch), 1.0))
        level += self.level[batch.devices] + self.wander(batch)
        level += batch.rng.normal(0.0, self.daily_sd, len(batch))
        score = 99.0 - self.per_doubling * np.maximum(level, 0.0)
        score = np.clip(np.round(batch.modulate("respiratory_score", score)), 1.0, 99.0)
        scoring = batch.occupied() & (batch.batch_age_days() >= self.collecting)
        scoring &= batch.rng.random(len(batch)) >= self.offline
        return np.where(scoring, score, np.nan)
