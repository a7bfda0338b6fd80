"""Statistics of generated history (virtual clock, fixed seed) against REALISM.md."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import numpy as np
import pytest

from simulator.engine.clock import VirtualClock
from simulator.engine.engine import Engine
from simulator.fleet.load import load_fleet
from simulator.metrics.metrics import Metrics
from simulator.transports.memory import MemoryTransport
from simulator.units import parse_instant

START = parse_instant("2026-01-05T00:00:00Z")


@pytest.fixture(scope="module")
def week() -> list[dict[str, Any]]:
    """A week of 6 farms' monitors and climate nodes, without imperfections."""

    async def generate() -> list[dict[str, Any]]:
        fleet, profiles = load_fleet(6, 2026, None, None)
        metrics = Metrics(fleet.devices.type_names)
        transport = MemoryTransport(metrics)
        engine = Engine(
            fleet,
            profiles,
            transport,
            VirtualClock(START),
            start=START,
            duration=7 * 86400.0,
            seed=2026,
            topic_template="t/{device_id}",
            device_types=["cough_monitor", "climate_node"],
            clean=True,
        )
        async with transport:
            await engine.run(asyncio.Event())
        return transport.payloads()

    return asyncio.run(generate())


def test_cough_rates_scale_with_pigs_and_are_lower_at_night(week: list[dict[str, Any]]) -> None:
    """Coughs per 100 pigs per hour fall in the healthy 5–25 band times sensitivity, and
    afternoons are louder than nights."""
    summaries = [p for p in week if p["kind"] == "summary"]
    counts = np.array([p["cough_count"] for p in summaries], float)
    hours = np.array([int(p["ts"][11:13]) for p in summaries])
    assert counts.min() >= 0
    assert counts.mean() > 1
    assert (
        counts[(hours >= 12) & (hours <= 16)].mean()
        > 1.3 * counts[(hours >= 0) & (hours <= 4)].mean()
    )


def test_room_sensors_agree_and_humidity_moves_against_temperature(
    week: list[dict[str, Any]],
) -> None:
    """A cough monitor's thermometers and its room's climate node read the same climate
    within sensor offsets; temperatures stay near barn setpoints; humidity falls as it warms."""
    by_room: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for p in week:
        if p["kind"] == "summary":
            by_room[p["room_id"]]["monitor"].append(p["temp_c_1"])
        elif p["kind"] == "reading":
            by_room[p["room_id"]]["node"].append(p["temp_c"])
    differences = [
        abs(np.mean(r["monitor"]) - np.mean(r["node"]))
        for r in by_room.values()
        if r["monitor"] and r["node"]
    ]
    assert np.median(differences) < 1.0
    readings = [p for p in week if p["kind"] == "reading"]
    temps = np.array([p["temp_c"] for p in readings])
    assert np.percentile(temps, 1) >= 8  # empty rooms in a cold snap are the coldest
    assert temps.max() <= 32
    humidity = np.array([p["rh_pct"] for p in readings])
    assert 30 <= humidity.mean() <= 85
    room = readings[0]["room_id"]
    own = [p for p in readings if p["room_id"] == room]
    correlation = np.corrcoef([p["temp_c"] for p in own], [p["rh_pct"] for p in own])[0, 1]
    assert correlation < -0.3
    co2 = np.array([p["co2_ppm"] for p in readings])
    assert 400 <= np.median(co2) <= 3000
    sound = np.array([p["sound_leq_dba"] for p in week if p["kind"] == "summary"])
    assert 65 <= sound.mean() <= 75
