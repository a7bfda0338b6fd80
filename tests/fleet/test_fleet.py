"""The fleet: deterministic from the seed, laid out per REALISM.md, held in arrays."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from simulator.fleet.build import build_fleet
from simulator.fleet.farms import DEFAULT_FARMS_DIR, FarmTemplate, load_templates
from simulator.fleet.listing import fleet_csv, fleet_json
from simulator.fleet.profiles import DeviceProfile, load_profiles
from simulator.fleet.topics import DEFAULT_TOPIC_TEMPLATE
from tests.helpers import simulate

Profiles = dict[str, DeviceProfile]
Templates = list[FarmTemplate]


@pytest.fixture(scope="module")
def profiles() -> dict[str, DeviceProfile]:
    return load_profiles()


@pytest.fixture(scope="module")
def templates() -> list[FarmTemplate]:
    return load_templates()


def test_same_seed_builds_the_same_fleet(profiles: Profiles, templates: Templates) -> None:
    """Names, places, time zones, ids and layouts are identical for identical seeds."""
    first = build_fleet(templates, profiles, 40, seed=11)
    second = build_fleet(templates, profiles, 40, seed=11)
    other = build_fleet(templates, profiles, 40, seed=12)
    assert [f.name for f in first.farms] == [f.name for f in second.farms]
    assert [(f.city, f.timezone) for f in first.farms] == [
        (f.city, f.timezone) for f in second.farms
    ]
    assert first.devices.ids == second.devices.ids
    assert first.devices.client_ids == second.devices.client_ids
    assert np.array_equal(first.rooms.pigs, second.rooms.pigs)
    assert [f.name for f in first.farms] != [f.name for f in other.farms]
    assert first.devices.ids != other.devices.ids


def test_a_farm_does_not_change_when_the_fleet_grows(
    profiles: Profiles, templates: Templates
) -> None:
    """Farm 7 is the same in a fleet of 10 and a fleet of 60: each farm has its own stream."""
    small = build_fleet(templates, profiles, 10, seed=5)
    large = build_fleet(templates, profiles, 60, seed=5)
    assert small.farms == large.farms[:10]
    assert large.devices.ids[: small.devices.count] == small.devices.ids


def test_layout_follows_the_templates(profiles: Profiles, templates: Templates) -> None:
    """EU rooms carry one cough monitor, US rooms 3 or 5 at named positions, every site one
    gateway, and the pigs of a room fit its pens."""
    fleet = build_fleet(templates, profiles, 200, seed=3)
    devices = fleet.devices
    names = devices.type_names
    monitors = Counter(
        int(devices.room[i])
        for i in range(devices.count)
        if names[devices.type[i]] == "cough_monitor"
    )
    gateways = Counter(
        int(devices.site[i]) for i in range(devices.count) if names[devices.type[i]] == "gateway"
    )
    assert set(gateways) == set(range(len(fleet.site_ids)))
    assert set(gateways.values()) == {1}
    seen_templates = set()
    for room, count in monitors.items():
        template = fleet.templates[int(fleet.rooms.template[room])]
        seen_templates.add(template.name)
        positions = {
            devices.positions[i]
            for i in range(devices.count)
            if devices.room[i] == room and names[devices.type[i]] == "cough_monitor"
        }
        if template.country == "US":
            assert count in (3, 5)
            assert positions in ({"E", "C", "W"}, {"EE", "EC", "C", "WC", "WW"})
        else:
            assert count == 1
        low, high = template.pigs_per_pen
        assert (
            low * fleet.rooms.pens[room] <= fleet.rooms.pigs[room] <= high * fleet.rooms.pens[room]
        )
    assert len(seen_templates) == len(templates)
    assert len(set(devices.ids)) == devices.count
    assert len(set(devices.client_ids)) == devices.count


def test_a_per_site_rule_takes_its_layouts_as_a_per_room_rule_does(
    profiles: Profiles, tmp_path: Path
) -> None:
    """A template's per-site devices with layouts stand at one layout's positions, as room
    devices do (the loader accepts layouts for both), and are numbered per site."""
    shipped = (DEFAULT_FARMS_DIR / "eu_finisher.toml").read_text()
    (tmp_path / "eu.toml").write_text(
        shipped.replace(
            "gateway = { per_site = 1 }",
            'gateway = { per_site = [1, 2], layouts = [["office"], ["office", "feed-room"]] }',
        )
    )
    fleet = build_fleet(load_templates(tmp_path), profiles, 30, seed=4)
    gateways = fleet.devices.of_type("gateway").tolist()
    per_site: dict[int, list[str]] = {}
    for device in gateways:
        per_site.setdefault(int(fleet.devices.site[device]), []).append(
            fleet.devices.positions[device]
        )
        assert fleet.devices.room[device] == -1
        assert fleet.devices.ids[device].startswith("gw-")
    assert {tuple(positions) for positions in per_site.values()} == {
        ("office",),
        ("office", "feed-room"),
    }
    assert len(per_site) == len(fleet.site_ids)


def test_firmware_versions_follow_each_profiles_shares(
    profiles: Profiles, templates: Templates
) -> None:
    """Each device type's firmware versions come in the shares its profile gives (within
    four standard errors over a fleet of 300 farms), every version drawn at least once."""
    fleet = build_fleet(templates, profiles, 300, seed=3)
    for name in fleet.devices.type_names:
        versions, shares = profiles[name].firmware
        drawn = [fleet.devices.firmware[device] for device in fleet.devices.of_type(name).tolist()]
        seen = Counter(drawn)
        assert set(seen) == set(versions), name
        for version, share in zip(versions, shares, strict=True):
            error = (share * (1 - share) / len(drawn)) ** 0.5
            assert abs(seen[version] / len(drawn) - share) < 4 * error, (name, version)


def test_fleet_state_lives_in_arrays(profiles: Profiles, templates: Templates) -> None:
    """Per-device and per-room state are numpy arrays sized to the fleet, not objects."""
    fleet = build_fleet(templates, profiles, 500)
    assert fleet.devices.count > 10_000
    for column in ("type", "farm", "site", "room"):
        array = getattr(fleet.devices, column)
        assert isinstance(array, np.ndarray)
        assert len(array) == fleet.devices.count
    for column in ("farm", "site", "pigs", "batch_days", "anchor"):
        array = getattr(fleet.rooms, column)
        assert isinstance(array, np.ndarray)
        assert len(array) == fleet.rooms.count
    ages = fleet.rooms.age_days(np.arange(fleet.rooms.count), np.full(fleet.rooms.count, 1.7e9))
    cycle = fleet.rooms.batch_days + fleet.rooms.empty_days
    assert np.all((ages >= 0) & (ages < cycle))
    # rooms are at every stage of their batches, some empty
    occupied = ages < fleet.rooms.batch_days
    assert 0.8 < occupied.mean() < 1.0


def test_fleet_listing_json_and_csv_agree(profiles: Profiles, templates: Templates) -> None:
    """The JSON listing nests farms, rooms and devices with topics; the CSV has one row per
    device with the same ids."""
    fleet = build_fleet(templates, profiles, 5)
    document = json.loads(fleet_json(fleet, profiles, DEFAULT_TOPIC_TEMPLATE))
    listed = [d["device_id"] for farm in document["farms"] for d in farm["devices"]]
    assert listed == fleet.devices.ids
    first = document["farms"][0]
    assert {"farm_id", "name", "city", "timezone", "rooms", "devices", "sites"} <= set(first)
    cough = next(d for d in first["devices"] if d["device_type"] == "cough_monitor")
    assert cough["topics"] == [
        f"barnstorm/{first['farm_id']}/{cough['room_id']}/cough_monitor/{cough['device_id']}/{kind}"
        for kind in ("summary", "daily")
    ]
    rows = fleet_csv(fleet, profiles, DEFAULT_TOPIC_TEMPLATE).splitlines()
    assert rows[0].startswith("farm_id,")
    assert len(rows) == fleet.devices.count + 1


@pytest.mark.slow
def test_fleet_command_prints_json_and_csv() -> None:
    """`simulate fleet --format json|csv` prints the same fleet a run publishes for."""
    as_json = simulate("fleet", "--farms", "3", "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    farms = json.loads(as_json.stdout)["farms"]
    assert [f["farm_id"] for f in farms] == ["farm-00001", "farm-00002", "farm-00003"]
    as_csv = simulate("fleet", "--farms", "3", "--format", "csv")
    assert as_csv.returncode == 0, as_csv.stderr
    devices = sum(len(f["devices"]) for f in farms)
    assert len(as_csv.stdout.splitlines()) == devices + 1
