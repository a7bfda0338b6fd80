"""Each shipped scenario runs and leaves its mark in the data."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simulator.engine.scenarios import load_scenario
from simulator.errors import ConfigError
from simulator.units import parse_instant
from tests.conftest import Observer
from tests.helpers import ROOT, simulate
from tests.scenario_helpers import run_scenario

DAY = 86400.0


def _epoch(payload: dict[str, Any]) -> float:
    return parse_instant(payload["ts"])


def test_outbreak_raises_coughing_in_its_rooms_only() -> None:
    """The outbreak scenario multiplies coughing in the rooms it targets (several times the
    day before it) and leaves the other rooms as they were."""
    engine, payloads, _ = run_scenario(
        "outbreak", farms=6, duration=8 * DAY, device_types=["cough_monitor"], realistic=False
    )
    event = engine.scenario.events[0]  # type: ignore[union-attr]
    room_index = {room: i for i, room in enumerate(engine.fleet.rooms.ids)}
    before: dict[bool, list[int]] = defaultdict(list)
    during: dict[bool, list[int]] = defaultdict(list)
    for p in payloads:
        if p["kind"] != "summary":
            continue
        hit = bool(event.target.rooms[room_index[p["room_id"]]])
        t = _epoch(p)
        if event.start - DAY <= t < event.start:
            before[hit].append(p["cough_count"])
        elif event.start + 3 * DAY <= t < event.start + 5 * DAY:
            during[hit].append(p["cough_count"])
    assert before[True], "the scenario targeted no room"
    assert np.mean(during[True]) > 2.5 * np.mean(before[True])
    assert np.mean(during[False]) < 1.4 * np.mean(before[False])


def test_heatwave_heats_the_barns_of_its_farms() -> None:
    """During the heatwave the barns of targeted farms warm by several degrees more than the
    barns of the other farms over the same days (weather fronts move both)."""
    engine, payloads, _ = run_scenario(
        "heatwave", farms=8, duration=4 * DAY, device_types=["climate_node"]
    )
    event = engine.scenario.events[0]  # type: ignore[union-attr]
    farm_index = {farm.farm_id: farm.index for farm in engine.fleet.farms}
    hit_farms = {
        f
        for f, i in farm_index.items()
        if engine.fleet.devices.farm[event.target.devices].tolist().count(i)
    }
    assert hit_farms
    temps: dict[tuple[bool, bool], list[float]] = defaultdict(list)
    for p in payloads:
        t = _epoch(p)
        before = t < event.start
        late = event.start + DAY <= t < event.start + 2 * DAY
        if before or late:
            temps[(p["farm_id"] in hit_farms, late)].append(p["temp_c"])
    warming = {
        hit: np.mean(temps[(hit, True)]) - np.mean(temps[(hit, False)]) for hit in (True, False)
    }
    assert warming[True] > warming[False] + 3.0


def test_ventilation_failure_overheats_its_rooms() -> None:
    """With the fans off, a room climbs toward the critical temperature, its ventilation
    reads 0 % and CO2 rises; afterwards it recovers."""
    engine, payloads, _ = run_scenario(
        "ventilation_failure",
        farms=10,
        duration=6 * 3600.0,
        device_types=["climate_node"],
        start="2026-01-10",
    )
    event = engine.scenario.events[0]  # type: ignore[union-attr]
    rooms = {engine.fleet.rooms.ids[i] for i in np.flatnonzero(event.target.rooms)}
    assert rooms
    before = [p for p in payloads if p["room_id"] in rooms and _epoch(p) < event.start]
    late = [
        p for p in payloads if p["room_id"] in rooms and event.start + 3600 <= _epoch(p) < event.end
    ]
    after = [p for p in payloads if p["room_id"] in rooms and _epoch(p) >= event.end + 3600]
    assert np.mean([p["temp_c"] for p in late]) > np.mean([p["temp_c"] for p in before]) + 8.0
    assert all(p["vent_pct"] <= 3 for p in late)  # stopped fans, within sensor noise
    assert np.mean([p["co2_ppm"] for p in late]) > np.mean([p["co2_ppm"] for p in before]) + 2000
    assert np.mean([p["temp_c"] for p in after]) < np.mean([p["temp_c"] for p in late]) - 8.0


def test_network_outage_buffers_and_backfills_without_a_gap() -> None:
    """Devices of the sites that lose their network send nothing during the outage, then
    backfill everything after it, interleaved with live data, with seq and ts intact: no
    seq missing or repeated, and each message stamped when it was measured, so in seq
    order the timestamps ascend."""
    engine, payloads, metrics = run_scenario("network_outage", farms=6, duration=8 * 3600.0)
    event = engine.scenario.events[0]  # type: ignore[union-attr]
    hit = {engine.fleet.devices.ids[i] for i in np.flatnonzero(event.target.devices)}
    assert hit
    by_device: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in payloads:
        by_device[p["device_id"]].append(p)
    inside = 0
    for device, sent in by_device.items():
        seqs = [p["seq"] for p in sent]
        assert sorted(seqs) == list(range(len(seqs))), device  # no gap, no repeat
        if device not in hit:
            assert seqs == sorted(seqs)
            continue
        window = [i for i, p in enumerate(sent) if event.start <= _epoch(p) < event.end]
        inside += len(window)
        first_after = next(i for i, p in enumerate(sent) if _epoch(p) >= event.end)
        # everything measured during the outage left the device only after it ended
        assert all(i > first_after for i in window), device
        assert all(p["_flags"] & 4 for p in (sent[i] for i in window))  # backfilled
        # a backfilled message keeps the time it was measured: in seq order, ts ascends
        in_seq_order = [_epoch(p) for p in sorted(sent, key=lambda p: p["seq"])]
        assert in_seq_order == sorted(in_seq_order), device
    totals = metrics.totals()
    assert inside > 0
    assert totals.backfilled == inside
    assert totals.dropped == 0
    assert totals.sent == totals.acknowledged


def test_network_outage_overflow_is_counted_as_dropped(tmp_path: Path) -> None:
    """A buffer smaller than the outage drops its oldest messages, and says so: the books
    still balance and the kept messages keep their seq."""
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    for source in (ROOT / "device_profiles").glob("*.toml"):
        text = re.sub(r"max_messages = \d+", "max_messages = 5", source.read_text())
        (profiles / source.name).write_text(text)
    engine, _, metrics = run_scenario(
        "network_outage", farms=6, duration=8 * 3600.0, profiles_dir=profiles
    )
    totals = metrics.totals()
    assert totals.dropped > 0
    assert totals.errors["buffer_overflow"] == totals.dropped
    assert totals.sent == totals.acknowledged + totals.dropped
    assert engine.stats.buffer_overflows == totals.dropped


def test_bad_payloads_break_about_the_configured_share() -> None:
    """About 2 % of messages are malformed, of every kind, counted in the metrics, and the
    rest stay valid."""
    _, payloads, metrics = run_scenario("bad_payloads", farms=4, duration=DAY)
    broken = [p for p in payloads if p["_flags"] & 2]
    share = len(broken) / len(payloads)
    assert 0.012 < share < 0.03
    assert metrics.totals().malformed == len(broken)
    unreadable = [p for p in broken if "_raw" in p]
    wrong_types = [p for p in broken if isinstance(p.get("seq"), str)]
    missing = [p for p in broken if "_raw" not in p and "device_id" not in p]
    oversized = [p for p in broken if "debug_dump" in p]
    assert unreadable
    assert wrong_types
    assert missing
    assert oversized
    assert all(isinstance(p["seq"], int) for p in payloads if not p["_flags"] & 2)


@pytest.mark.slow
def test_reconnect_storm_drops_and_restores_connections(
    tmp_path: Path, mosquitto: str, observer: Observer, topic_root: str
) -> None:
    """Against Mosquitto, the storm drops half the sites' connections at once and brings them
    back together; devices buffer meanwhile and every message still arrives, seq intact."""
    report_file = tmp_path / "report.json"
    result = simulate(
        "--farms",
        "6",
        "--duration",
        "3m",
        "--speed",
        "20",
        "--mqtt",
        mosquitto,
        "--scenario",
        "scenarios/reconnect_storm.toml",
        "--connection",
        "per-gateway",
        "--topic-template",
        f"{topic_root}/{{device_id}}/{{kind}}",
        "--connect-rate",
        "0",
        "--report",
        str(report_file),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    report = result.report(report_file)
    connections = report["connections"]
    assert connections["lost"] > 0
    assert connections["reconnected"] == connections["lost"]
    assert connections["up"] == report["fleet"]["sites"]
    totals = report["totals"]
    assert totals["backfilled"] > 0
    assert totals["acknowledged"] == totals["sent"]
    observer.check_delivery(totals)


@pytest.mark.slow
def test_bad_scenario_files_name_the_place(tmp_path: Path) -> None:
    """A scenario with an unknown event type or a bad value is refused, naming file and key."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[[events]]\ntype = "meteor"\n')
    with pytest.raises(ConfigError, match=r"bad.toml: events\[0\].type: unknown event type"):
        load_scenario(bad)
    bad.write_text('[[events]]\ntype = "heatwave"\noutdoor_c = "hot"\n')
    with pytest.raises(ConfigError, match=r"events\[0\].outdoor_c: expected a number"):
        load_scenario(bad)
    bad.write_text('[[events]]\ntype = "outbreak"\nwhere = { rooms = ["nowhere"] }\n')
    result = simulate(
        "--farms",
        "2",
        "--scenario",
        str(bad),
        "--speed",
        "max",
        "--output",
        str(tmp_path / "o.jsonl"),
        "--quiet",
    )
    assert result.returncode == 2
    assert 'events[0].where.rooms: "nowhere" is not in this fleet' in result.stderr
