"""A year of a fleet (virtual clock, fixed seed) against the statistics of REALISM.md."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from simulator.engine.clock import VirtualClock
from simulator.engine.engine import Engine
from simulator.errors import ConfigError
from simulator.fleet.build import Fleet
from simulator.fleet.load import load_fleet
from simulator.messages import DUPLICATE, Message
from simulator.metrics.metrics import Metrics
from simulator.transports.memory import MemoryTransport
from simulator.units import parse_instant
from tests.helpers import ROOT

START = parse_instant("2025-01-01")
DAY = 86400.0
# Fewer messages per device than the shipped profiles (same models), so a year is quick.
INTERVALS = {
    "cough_monitor.toml": ('every = "15m"', 'every = "6h"'),
    "climate_node.toml": ('every = "5m"', 'every = "3h"'),
    "gateway.toml": ('every = "60s"', 'every = "6h"'),
}


@dataclass
class YearData:
    fleet: Fleet
    daily: list[dict[str, Any]] = field(default_factory=list)
    coughs: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(dict))
    climate: list[tuple[str, float, float, float]] = field(default_factory=list)
    messages: int = 0
    duplicates: int = 0
    field_slots: int = 0
    missing_fields: int = 0


class Aggregator(MemoryTransport):
    """Keeps a slim summary of every message instead of the messages (our own seam)."""

    def __init__(self, metrics: Metrics, data: YearData, fields: dict[str, set[str]]) -> None:
        super().__init__(metrics, keep=False)
        self.data = data
        self.fields = fields

    def send_many(self, messages: list[Message]) -> None:
        super().send_many(messages)
        data = self.data
        for message in messages:
            if message.flags & DUPLICATE:
                data.duplicates += 1
                continue
            data.messages += 1
            p = orjson.loads(message.payload)
            kind = p["kind"]
            expected = self.fields[kind]
            data.field_slots += len(expected)
            data.missing_fields += len(expected - set(p))
            t = parse_instant(p["ts"])
            if kind == "daily":
                data.daily.append(p)
            elif kind == "summary" and "cough_count" in p:
                day = int((t - START) // DAY)
                per_day = data.coughs[p["device_id"]]
                per_day[day] = per_day.get(day, 0) + p["cough_count"]
            elif kind == "reading" and "temp_c" in p:
                data.climate.append((p["room_id"], t, p["temp_c"], p.get("rh_pct", np.nan)))


@pytest.fixture(scope="module")
def year(tmp_path_factory: pytest.TempPathFactory) -> YearData:
    """A year of 8 farms of every device type, imperfections on."""
    profiles = tmp_path_factory.mktemp("profiles")
    for source in (ROOT / "device_profiles").glob("*.toml"):
        old, new = INTERVALS[source.name]
        text = source.read_text()
        (profiles / source.name).write_text(text.replace(old, new))
    fleet, loaded = load_fleet(8, 2025, None, profiles)
    fields = {
        kind: {f.name for f in spec.fields}
        for profile in loaded.values()
        for kind, spec in profile.messages.items()
    }
    for profile in loaded.values():
        for variant in profile.variants.values():
            assert variant  # variants exist in the shipped profiles
    loaded = {name: replace(profile, variants={}) for name, profile in loaded.items()}
    data = YearData(fleet)
    metrics = Metrics(fleet.devices.type_names)
    transport = Aggregator(metrics, data, fields)
    engine = Engine(
        fleet,
        loaded,
        transport,
        VirtualClock(START),
        start=START,
        duration=365 * DAY,
        seed=2025,
        topic_template="t/{device_id}",
    )

    async def go() -> None:
        async with transport:
            await engine.run(asyncio.Event())

    asyncio.run(go())
    return data


def _episodes(per_day: dict[int, int]) -> list[int]:
    """Onset days of outbreaks seen in one monitor's daily coughs: 2+ days over 2x baseline."""
    days = np.arange(365)
    counts = np.array([per_day.get(int(d), 0) for d in days], float)
    stocked = counts > 0
    if stocked.sum() < 60:
        return []
    baseline = np.median(counts[stocked])
    high = counts > 2.0 * baseline
    onsets = []
    run = 0
    quiet = 99  # days since the last high day
    calm_before = 99
    for day in days:
        if high[day]:
            if run == 0:
                calm_before = quiet
            run += 1
            if run == 2 and calm_before >= 5:
                onsets.append(int(day) - 1)
            quiet = 0
        else:
            run = 0
            quiet += 1
    return onsets


def test_outbreaks_happen_three_to_four_times_a_year_mostly_in_weeks_3_to_9(
    year: YearData,
) -> None:
    """Outbreaks read from the cough counts: the model makes 3–4 per monitor-year; a simple
    detector (2+ days over twice the baseline) finds most of them, mild chronic ones in part
    of the pens escape it; most start in weeks 3–9 after placement."""
    fleet = year.fleet
    index = {device_id: i for i, device_id in enumerate(fleet.devices.ids)}
    onsets = {device: _episodes(per_day) for device, per_day in year.coughs.items()}
    per_year = np.mean([len(v) for v in onsets.values()])
    assert 2.0 <= per_year <= 4.5
    ages = []
    for device, days in onsets.items():
        room = int(fleet.devices.room[index[device]])
        for day in days:
            age = fleet.rooms.age_days(np.array([room]), np.array([START + day * DAY]))[0]
            ages.append(age)
    in_window = np.mean([(14 <= a <= 70) for a in ages])  # weeks 3–9 plus detection slack
    assert in_window > 0.5


def test_temperature_follows_batch_age_and_the_day(year: YearData) -> None:
    """Rooms are warm at placement and cooler weeks later (the setpoint trend), and warmer
    in the afternoon than at night (the daily cycle)."""
    fleet = year.fleet
    rooms = {room_id: i for i, room_id in enumerate(fleet.rooms.ids)}
    young, old, afternoon, night = [], [], [], []
    for room_id, t, temp, _ in year.climate:
        room = rooms[room_id]
        age = fleet.rooms.age_days(np.array([room]), np.array([t]))[0]
        month = int(((t - START) / DAY) // 30.5)
        if month in (0, 1, 10, 11):  # winter: the controller, not the weather, sets the room
            if age < 7:
                young.append(temp)
            elif 70 <= age < fleet.rooms.batch_days[room]:
                old.append(temp)
        farm = fleet.farms[int(fleet.rooms.farm[room])]
        hour = ((t + fleet.utc_offsets(t)[farm.index]) % DAY) / 3600
        if 14 <= hour < 17:
            afternoon.append(temp)
        elif 2 <= hour < 5:
            night.append(temp)
    assert np.median(young) > np.median(old) + 2.0
    assert np.median(afternoon) > np.median(night) + 0.5


def test_duplicate_and_missing_field_rates(year: YearData) -> None:
    """About 0.5 % of messages are resent with the same seq and about 0.3 % of fields are
    missing, as the profiles say."""
    assert 0.003 <= year.duplicates / year.messages <= 0.007
    assert 0.002 <= year.missing_fields / year.field_slots <= 0.004


def test_the_templates_episode_shapes_drive_the_score(tmp_path: Path) -> None:
    """The [health] ranges of a farm template are what shapes its outbreaks: with every
    episode's peak set to 1x the daily scores of a year never leave the healthy bands,
    with the shipped ranges the same fleet has red and yellow days; a range whose low end
    is above its high end is refused naming the file and key."""
    farms = tmp_path / "farms"
    farms.mkdir()
    for source in (ROOT / "farms").glob("*.toml"):
        text = source.read_text() + "\n[health]\nacute_peak = [1, 1]\nchronic_peak = [1, 1]\n"
        (farms / source.name).write_text(text)

    def scores(farms_dir: Path | None) -> np.ndarray[Any, Any]:
        fleet, profiles = load_fleet(6, 7, farms_dir, None)
        metrics = Metrics(fleet.devices.type_names)
        transport = MemoryTransport(metrics)
        engine = Engine(
            fleet,
            profiles,
            transport,
            VirtualClock(START),
            start=START,
            duration=365 * DAY,
            seed=7,
            topic_template="t/{device_id}",
            device_types=["cough_monitor"],
            kinds=["daily"],
        )

        async def go() -> None:
            async with transport:
                await engine.run(asyncio.Event())

        asyncio.run(go())
        values = [p.get("rehs") for p in transport.payloads()]
        return np.array([v for v in values if v is not None], float)

    calm, shipped = scores(farms), scores(None)
    assert len(calm) > 5000
    assert calm.min() >= 60
    assert np.mean(shipped < 60) > 0.03
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "eu.toml").write_text(
        (ROOT / "farms" / "eu_finisher.toml").read_text() + "\n[health]\nacute_peak = [9, 3]\n"
    )
    with pytest.raises(ConfigError, match=r"eu.toml.*acute_peak.*low <= high"):
        load_fleet(2, 7, broken, None)
