"""Outbreak episodes are a function of (room, device, time) alone: whatever batch a
message is computed in, a real-time tick of one or a tick of history of thousands, its
multiplier is the same."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.arrays import hash_uniform
from simulator.fleet.build import Fleet, build_fleet
from simulator.fleet.farms import load_templates
from simulator.fleet.profiles import load_profiles
from simulator.models.base import Batch
from simulator.models.episodes import (
    Outbreaks,
    _traits,
    recovering_curve,
    waning_curve,
)
from simulator.units import parse_instant

START = parse_instant("2026-01-05T00:00:00Z")


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    """Twenty farms of the shipped templates."""
    return build_fleet(load_templates(), load_profiles(), 20)


def _batch(fleet: Fleet, devices: np.ndarray, times: np.ndarray) -> Batch:
    return Batch(fleet, devices, times, 60.0, np.random.default_rng(0))


def _one_by_one(outbreaks: Outbreaks, fleet: Fleet, device: int, t: float) -> float:
    """The multiplier of one message as the model describes it: each of the room's six
    episode slots of the current batch of pigs, in turn, the strongest one counting."""
    room = int(fleet.devices.room[device])
    if room < 0:
        return 1.0
    table, seed = fleet.rooms, outbreaks.seed
    spec = outbreaks.specs[int(table.template[room])]
    batch_days = float(table.batch_days[room])
    elapsed = (t - float(table.anchor[room])) / 86400.0
    cycle = int(np.floor(elapsed / (batch_days + float(table.empty_days[room]))))
    age = elapsed - cycle * (batch_days + float(table.empty_days[room]))
    if age >= batch_days:
        return 1.0
    best = 1.0
    for slot in range(6):
        base = hash_uniform(seed, [room], [cycle], slot)
        if base[0] >= spec.outbreaks_per_year / spec.reach * batch_days / 365.0 / 6:
            continue
        u_onset, u_window, u_kind, u_peak, u_time, u_len, u_silent, u_pens, *wave = _traits(
            base, 11
        )
        u_reach, u_lag = _traits(hash_uniform(seed, [room], [cycle], slot, [device]), 2)
        if u_reach[0] >= spec.reach:
            continue
        first, last = spec.risk_weeks[0] * 7.0, spec.risk_weeks[1] * 7.0
        if u_window[0] < spec.in_risk_weeks:
            onset = first + u_onset * (last - first)
        else:
            onset = 3.0 + u_onset * (max(batch_days - 10.0, 4.0) - 3.0)
        acute = u_kind[0] < spec.acute_share
        days = age - onset - u_lag * spec.max_lag_days - (1.0 + u_silent if acute else 0.0)

        def drawn(name: str, u: np.ndarray) -> np.ndarray:
            low, high = spec.shape(name)
            return low + u * (high - low)

        if acute:
            value = recovering_curve(
                days,
                drawn("acute_peak", u_peak),
                drawn("acute_peak_day", u_time),
                drawn("acute_recovery_days", u_len),
            )
        else:
            peak = 1.0 + (0.5 + 0.5 * u_pens) * (drawn("chronic_peak", u_peak) - 1.0)
            value = waning_curve(
                days,
                peak,
                drawn("chronic_ramp_days", u_time),
                drawn("chronic_hold_days", u_len),
                drawn("chronic_wave_days", wave[0]),
                drawn("chronic_wave_depth", wave[1]),
                wave[2],
            )
        best = max(best, float(value[0]))
    return best


def test_the_batched_multiplier_is_the_model_computed_message_by_message(fleet: Fleet) -> None:
    """Each message's multiplier in a batch of thousands is what the model gives it slot by
    slot, the strongest of its room's episodes that reach its device, including messages
    inside two overlapping episodes."""
    rng = np.random.default_rng(2)
    monitors = np.flatnonzero(fleet.devices.room >= 0)
    devices = rng.choice(monitors, 2000)
    times = START + rng.uniform(0.0, 2 * 365 * 86400.0, len(devices))
    outbreaks = Outbreaks(19, [t.health for t in load_templates()])
    batched = outbreaks.multiplier(_batch(fleet, devices, times))
    expected = [
        _one_by_one(outbreaks, fleet, d, t)
        for d, t in zip(devices.tolist(), times.tolist(), strict=True)
    ]
    np.testing.assert_allclose(batched, expected, rtol=1e-12)
    assert float(np.mean(batched > 1.0)) > 0.05


def test_a_message_has_the_same_multiplier_alone_and_in_any_batch(fleet: Fleet) -> None:
    """A year of readings of every monitor, drawn in one batch, in shuffled batches of a
    few and one by one, gives each message the same outbreak multiplier, and some of
    them are in an episode (so the comparison is not of ones)."""
    rng = np.random.default_rng(11)
    monitors = np.flatnonzero(fleet.devices.room >= 0)
    devices = rng.choice(monitors, 3000)
    times = START + rng.uniform(0.0, 365 * 86400.0, len(devices))
    outbreaks = Outbreaks(7, [t.health for t in load_templates()])
    whole = outbreaks.multiplier(_batch(fleet, devices, times))
    assert 0.05 < float(np.mean(whole > 1.0)) < 0.6
    assert float(whole.max()) > 2.0
    shuffled = rng.permutation(len(devices))
    for part in np.array_split(shuffled, 400):
        np.testing.assert_array_equal(
            outbreaks.multiplier(_batch(fleet, devices[part], times[part])), whole[part]
        )
    for k in rng.choice(len(devices), 200, replace=False).tolist():
        one = outbreaks.multiplier(_batch(fleet, devices[k : k + 1], times[k : k + 1]))
        assert one[0] == whole[k]


def test_devices_without_a_room_and_empty_rooms_have_no_outbreak(fleet: Fleet) -> None:
    """Gateways (no room) never cough, and no monitor is in an episode while its room
    stands empty between two batches of pigs."""
    rng = np.random.default_rng(5)
    devices = rng.integers(0, fleet.devices.count, 5000)
    times = START + rng.uniform(0.0, 365 * 86400.0, len(devices))
    batch = _batch(fleet, devices, times)
    multiplier = Outbreaks(3, [t.health for t in load_templates()]).multiplier(batch)
    assert np.all(multiplier >= 1.0)
    no_room = fleet.devices.room[devices] < 0
    assert no_room.any()
    assert np.all(multiplier[no_room] == 1.0)
    empty = ~no_room & ~batch.occupied()
    assert empty.any()
    assert np.all(multiplier[empty] == 1.0)
