"""Respiratory outbreaks of a room, and the weather outside its barn.

Both are stateless functions of (room or farm, time) drawn from hashes of the run's
seed, so a room's outbreaks in one batch are the same whatever window a run covers, and
any tick can evaluate them for any batch of messages at once.

Outbreaks (REALISM.md): about 3–4 episodes per monitor-year, most in weeks 3–9 after
placement. Acute (influenza-like, ~70 %): 1–2 silent days, coughing peaks at 3–10x by
day 3–5, then returns within days, passing through mild levels. Chronic (mycoplasma-like,
~30 %): ramps over 2–4 weeks to 2–4x and holds for weeks, often in some pens only,
waxing and waning. An episode reaches each monitor of its room with some probability and
a lag of days. The shapes' ranges are the farm template's ``[health]`` keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from simulator.arrays import SECONDS_PER_DAY, FloatArray, IntArray, hash_uniform
from simulator.models.base import Batch

if TYPE_CHECKING:
    from simulator.fleet.farms import HealthSpec
    from simulator.fleet.tables import RoomTable

_SLOTS = 6  # at most this many episodes per room and batch
_TWO_PI = 2.0 * np.pi


def acute_curve(
    days: FloatArray, peak: FloatArray, peak_day: FloatArray, end_day: FloatArray
) -> FloatArray:
    """Multiplier of an acute episode ``days`` after coughing starts: up to ``peak`` on
    ``peak_day``, back to 1 by ``end_day``."""
    rising = np.clip(days / np.maximum(peak_day, 0.1), 0.0, 1.0)
    falling = np.clip((end_day - days) / np.maximum(end_day - peak_day, 0.1), 0.0, 1.0)
    shape = np.where(days < peak_day, rising, falling)
    return np.asarray(np.where((days >= 0) & (days < end_day), 1.0 + (peak - 1.0) * shape, 1.0))


def chronic_curve(
    days: FloatArray, peak: FloatArray, ramp: FloatArray, hold: FloatArray
) -> FloatArray:
    """Multiplier of a chronic episode: a ramp to ``peak``, a hold, a week to fade."""
    fade = 7.0
    rising = np.clip(days / np.maximum(ramp, 0.1), 0.0, 1.0)
    falling = np.clip((ramp + hold + fade - days) / fade, 0.0, 1.0)
    shape = np.minimum(rising, falling)
    return np.asarray(np.where(days >= 0, 1.0 + (peak - 1.0) * shape, 1.0))


def recovering_curve(
    days: FloatArray, peak: FloatArray, peak_day: FloatArray, recovery: FloatArray
) -> FloatArray:
    """Multiplier of a natural acute episode: a rise to ``peak`` by ``peak_day``, then an
    exponential return with time constant ``recovery`` (days), over after six of them."""
    rising = np.clip(days / np.maximum(peak_day, 0.1), 0.0, 1.0)
    falling = np.exp(-np.maximum(days - peak_day, 0.0) / np.maximum(recovery, 0.1))
    shape = np.where(days < peak_day, rising, falling)
    inside = (days >= 0) & (days < peak_day + 6.0 * recovery)
    return np.asarray(np.where(inside, 1.0 + (peak - 1.0) * shape, 1.0))


def waning_curve(
    days: FloatArray,
    peak: FloatArray,
    ramp: FloatArray,
    hold: FloatArray,
    period: FloatArray,
    depth: FloatArray,
    phase: FloatArray,
) -> FloatArray:
    """Multiplier of a natural chronic episode: :func:`chronic_curve` whose excess waxes and
    wanes with ``period`` days, giving back up to ``depth`` of it in each trough."""
    wave = 1.0 - depth * (0.5 + 0.5 * np.cos(_TWO_PI * (days / np.maximum(period, 0.5) + phase)))
    base = chronic_curve(days, peak, ramp, hold)
    return np.asarray(1.0 + (base - 1.0) * wave)


_PRIMES = np.array(
    [
        7919.0,
        104729.0,
        1299709.0,
        15485863.0,
        179424673.0,
        2038074743.0,
        22801763489.0,
        252097800623.0,
        2760727302517.0,
        611953.0,
        9737333.0,
        86028121.0,
    ]
)


def _traits(base: FloatArray, count: int) -> list[FloatArray]:
    """``count`` further uniforms from one hashed uniform: fractional parts of prime multiples."""
    return [np.asarray(np.mod(base * _PRIMES[i] + 0.5 * i, 1.0)) for i in range(count)]


class Outbreaks:
    """The natural respiratory episodes of every room of a fleet, for one run's seed."""

    def __init__(self, seed: int, specs: list[HealthSpec]) -> None:
        self.seed = seed
        self.specs = specs
        #: each template's value of a spec attribute, and low/high of a shape range, built
        #: once: a real-time tick evaluates these for a few messages at a time.
        self._values: dict[str, FloatArray] = {}
        self._ranges: dict[str, tuple[FloatArray, FloatArray]] = {}

    def _spec_array(self, templates: IntArray, attribute: str) -> FloatArray:
        values = self._values.get(attribute)
        if values is None:
            values = np.array([getattr(s, attribute) for s in self.specs], np.float64)
            self._values[attribute] = values
        return np.asarray(values[templates], np.float64)

    def _drawn(self, templates: IntArray, name: str, u: FloatArray) -> FloatArray:
        """A value of the shape range ``name`` of each key's template, at uniform ``u``."""
        ranges = self._ranges.get(name)
        if ranges is None:
            pairs = np.array([s.shape(name) for s in self.specs], np.float64)
            ranges = self._ranges[name] = (pairs[:, 0].copy(), pairs[:, 1] - pairs[:, 0])
        low, width = ranges
        return np.asarray(low[templates] + u * width[templates], np.float64)

    def multiplier(self, batch: Batch) -> FloatArray:
        """Each message's cough-rate multiplier from the natural episodes of its room.

        Episodes belong to a (room, batch of pigs); whether one reaches a monitor, and how
        late, to a (device, batch of pigs). Every slot of every key of these messages is
        drawn at once, and only the messages of a live batch are paired with the episodes
        of their room: a real-time tick of a few messages costs a few dozen numpy calls,
        a tick of history a few passes over its messages."""
        table = batch.fleet.rooms
        result = np.ones(len(batch), np.float64)
        rooms = np.maximum(batch.rooms, 0)
        cycle_days = table.batch_days[rooms] + table.empty_days[rooms]
        elapsed = (batch.times - table.anchor[rooms]) / SECONDS_PER_DAY
        cycle = np.floor(elapsed / cycle_days).astype(np.int64)
        age = elapsed - cycle * cycle_days
        live = np.flatnonzero((batch.rooms >= 0) & (age < table.batch_days[rooms]))
        if not len(live):
            return result
        room_keys, room_of = np.unique(rooms[live] * 1_000_003 + cycle[live], return_inverse=True)
        episodes = self._episodes(table, room_keys)
        if episodes is None:
            return result
        message_at, episode, lag = self._reaching(
            batch, episodes, room_of.reshape(-1), batch.devices[live], cycle[live]
        )
        if not len(message_at):
            return result
        days = age[live][message_at] - episodes.onset[episode] - lag
        days -= np.where(episodes.acute[episode], episodes.silent[episode], 0.0)
        value = episodes.shape(days, episode)
        # Pairs come message by message: the strongest episode of each message counts.
        first = np.flatnonzero(np.r_[True, message_at[1:] != message_at[:-1]])
        result[live[message_at[first]]] = np.maximum(np.maximum.reduceat(value, first), 1.0)
        return result

    def _episodes(self, table: RoomTable, room_keys: IntArray) -> _Episodes | None:
        """The episodes of these (room, batch of pigs) keys, or None if there is none."""
        key_rooms = room_keys // 1_000_003
        templates = table.template[key_rooms].astype(np.int64)
        batch_days = table.batch_days[key_rooms]
        # Episodes per room and batch, spread over the slots (binomial ~ Poisson): one hash
        # per key and slot; an episode's further traits are decorrelated from it cheaply.
        expected = (
            self._spec_array(templates, "outbreaks_per_year")
            / self._spec_array(templates, "reach")
            * batch_days
            / 365.0
        )
        base = hash_uniform(
            self.seed,
            key_rooms[:, None],
            (room_keys - key_rooms * 1_000_003)[:, None],
            np.arange(_SLOTS),
        )
        key, slot = np.nonzero(base < (expected / _SLOTS)[:, None])
        if not len(key):
            return None
        (u_onset, u_window, u_kind, u_peak, u_time, u_len, u_silent, u_pens, *u_wave) = _traits(
            base[key, slot], 11
        )
        templates = templates[key]
        first_week = self._spec_array(templates, "first_risk_day")
        last_week = self._spec_array(templates, "last_risk_day")
        late_end = np.maximum(batch_days[key] - 10.0, 4.0)
        onset = np.where(
            u_window < self._spec_array(templates, "in_risk_weeks"),
            first_week + u_onset * (last_week - first_week),
            3.0 + u_onset * (late_end - 3.0),
        )

        def drawn(name: str, u: FloatArray) -> FloatArray:
            return self._drawn(templates, name, u)

        pens = 0.5 + 0.5 * u_pens  # share of the airspace affected
        return _Episodes(
            key=key,
            slot=slot,
            onset=onset,
            acute=u_kind < self._spec_array(templates, "acute_share"),
            silent=1.0 + u_silent,  # 1–2 silent days
            acute_peak=drawn("acute_peak", u_peak),
            acute_peak_day=drawn("acute_peak_day", u_time),
            acute_recovery=drawn("acute_recovery_days", u_len),
            chronic_peak=1.0 + pens * (drawn("chronic_peak", u_peak) - 1.0),
            chronic_ramp=drawn("chronic_ramp_days", u_time),
            chronic_hold=drawn("chronic_hold_days", u_len),
            wave_days=drawn("chronic_wave_days", u_wave[0]),
            wave_depth=drawn("chronic_wave_depth", u_wave[1]),
            wave_phase=u_wave[2],
        )

    def _reaching(
        self,
        batch: Batch,
        episodes: _Episodes,
        room_of: IntArray,
        devices: IntArray,
        cycle: IntArray,
    ) -> tuple[IntArray, IntArray, FloatArray]:
        """(message, episode, lag in days) for each message and each episode of its room
        that reaches its device, message by message. Whether and how late an episode
        reaches a monitor is drawn once per (device, batch of pigs) of these messages."""
        device_keys, device_of = np.unique(devices * 1_000_003 + cycle, return_inverse=True)
        device_of = device_of.reshape(-1)
        key_devices = device_keys // 1_000_003
        device_rooms = batch.fleet.devices.room[key_devices].astype(np.int64)
        room_key = np.empty(len(device_keys), np.int64)
        room_key[device_of] = room_of
        per_room_key = np.bincount(episodes.key, minlength=int(room_key.max()) + 1)
        device_at, episode = _pairs(room_key, per_room_key)
        u_reach, u_lag = _traits(
            hash_uniform(
                self.seed,
                device_rooms[device_at],
                (device_keys - key_devices * 1_000_003)[device_at],
                episodes.slot[episode],
                key_devices[device_at],
            ),
            2,
        )
        templates = batch.fleet.rooms.template[np.maximum(device_rooms, 0)].astype(np.int64)
        reached = u_reach < self._spec_array(templates, "reach")[device_at]
        lag = u_lag * self._spec_array(templates, "max_lag_days")[device_at]
        message_at, pair = _pairs(device_of, np.bincount(device_at, minlength=len(device_keys)))
        keep = reached[pair]
        pair = pair[keep]
        return message_at[keep], episode[pair], lag[pair]


def _pairs(groups: IntArray, counts: IntArray) -> tuple[IntArray, IntArray]:
    """Each item paired with each entry of its group, item by item: group ``g`` owns the
    ``counts[g]`` entries numbered from ``counts[:g].sum()``. Returns (item, entry)."""
    per_item = counts[groups]
    item = np.repeat(np.arange(len(groups)), per_item)
    item_start = np.cumsum(per_item) - per_item
    group_start = np.cumsum(counts) - counts
    entry = group_start[groups][item] + np.arange(len(item)) - item_start[item]
    return item, entry


@dataclass(frozen=True)
class _Episodes:
    """The natural episodes of some (room, batch of pigs) keys, one element each."""

    key: IntArray  # which key (room, batch of pigs) the episode belongs to
    slot: IntArray  # its slot in that key
    onset: FloatArray  # days after placement that coughing could start (before lag, silence)
    acute: npt.NDArray[np.bool_]
    silent: FloatArray  # days an acute episode stays silent
    acute_peak: FloatArray
    acute_peak_day: FloatArray
    acute_recovery: FloatArray
    chronic_peak: FloatArray
    chronic_ramp: FloatArray
    chronic_hold: FloatArray
    wave_days: FloatArray
    wave_depth: FloatArray
    wave_phase: FloatArray

    def shape(self, days: FloatArray, episode: IntArray) -> FloatArray:
        """The multiplier of ``episode`` (indices) ``days`` after its coughing starts."""
        acute = recovering_curve(
            days,
            self.acute_peak[episode],
            self.acute_peak_day[episode],
            self.acute_recovery[episode],
        )
        chronic = waning_curve(
            days,
            self.chronic_peak[episode],
            self.chronic_ramp[episode],
            self.chronic_hold[episode],
            self.wave_days[episode],
            self.wave_depth[episode],
            self.wave_phase[episode],
        )
        return np.asarray(np.where(self.acute[episode], acute, chronic), np.float64)


@dataclass(frozen=True)
class Weather:
    """Outdoor temperature by a farm's latitude, the season, the hour and passing fronts."""

    seed: int

    def outdoor(self, batch: Batch) -> FloatArray:
        def compute() -> FloatArray:
            farms = batch.farms
            latitude = batch.fleet.farm_latitude[farms]
            north = latitude >= 0
            lat = np.abs(latitude)
            annual_mean = 30.0 - 0.38 * lat
            amplitude = 4.0 + 0.1 * lat
            day_of_year = (batch.times / SECONDS_PER_DAY) % 365.25
            peak_day = np.where(north, 200.0, 17.0)
            season = amplitude * np.cos(_TWO_PI * (day_of_year - peak_day) / 365.25)
            daily = 4.0 * np.cos(_TWO_PI * (batch.local_hour() - 15.0) / 24.0)
            days = batch.times / SECONDS_PER_DAY
            fronts = np.zeros(len(batch))
            for period, size, salt in ((3.1, 1.6, 1), (7.3, 1.4, 2), (17.9, 1.2, 3)):
                phase = _TWO_PI * hash_uniform(self.seed, farms, salt)
                fronts += size * np.sin(_TWO_PI * days / period + phase)
            return batch.modulate("outdoor_temperature", annual_mean + season + daily + fronts)

        return batch.cached("outdoor_temperature", compute)


@dataclass(frozen=True)
class RunContext:
    """Run-wide processes that signal models read through :attr:`Batch.context`."""

    outbreaks: Outbreaks
    weather: Weather
