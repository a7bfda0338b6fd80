"""The fleet: farms → sites → rooms → devices, deterministic from one seed.

Farms are few and carry names, so they are small objects; rooms and devices are many,
so they are tables of numpy arrays (struct of arrays) with their string ids in lists.
Each farm draws from its own random stream (``SeedSequence(seed).spawn``), so farm 7 is
the same whether the fleet has 10 farms or 10,000, and a run, the ``simulate fleet``
listing and the dashboard users all see the same fleet for the same seed.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from faker import Faker

from simulator.arrays import SECONDS_PER_DAY
from simulator.errors import ConfigError
from simulator.fleet.farms import FarmTemplate
from simulator.fleet.profiles import DeviceProfile
from simulator.fleet.tables import (
    _BATCH_EPOCH,
    DEFAULT_SEED,
    DeviceTable,
    Farm,
    Fleet,
    RoomTable,
)

__all__ = ["DEFAULT_SEED", "DeviceTable", "Farm", "Fleet", "RoomTable", "build_fleet"]


_FAKER_PROVIDERS = ["faker.providers.geo", "faker.providers.person"]


def build_fleet(
    templates: Sequence[FarmTemplate],
    profiles: Mapping[str, DeviceProfile],
    farms: int,
    seed: int = DEFAULT_SEED,
    built: Callable[[int], None] | None = None,
) -> Fleet:
    """Expand ``farms`` farms from ``templates``; identical for identical arguments.
    ``built(1)`` is called after each farm (a progress bar's count)."""
    type_names = sorted(profiles)
    devices = DeviceTable(type_names)
    kinds = {name: _Kind.of(profiles[name], code) for code, name in enumerate(type_names)}
    rooms = RoomTable()
    farm_list: list[Farm] = []
    site_ids: list[str] = []
    site_farm: list[int] = []
    weights = np.array([t.weight for t in templates], np.float64)
    weights /= weights.sum()
    fakers: dict[str, Faker] = {}
    streams = np.random.SeedSequence(seed).spawn(farms)

    for index in range(farms):
        if built is not None:
            built(1)
        rng = np.random.default_rng(streams[index])
        template_index = int(rng.choice(len(templates), p=weights))
        template = templates[template_index]
        if template.locale not in fakers:
            fakers[template.locale] = Faker(template.locale, providers=_FAKER_PROVIDERS)
        fake = fakers[template.locale]
        fake.seed_instance(int(rng.integers(2**62)))
        place = fake.local_latlng(country_code=template.country)
        if place is None:
            raise ConfigError(
                f"{template.source}: country",
                f'no places known for country "{template.country}" (an ISO code such as NL)',
            )
        latitude, longitude, city, country, timezone = place
        farm_id = f"farm-{index + 1:05d}"
        sites: list[str] = []
        for site_number in range(1, _draw(rng, template.sites) + 1):
            site_id = f"{farm_id}-s{site_number}"
            site_index = len(site_ids)
            site_ids.append(site_id)
            site_farm.append(index)
            sites.append(site_id)
            _add_devices(
                devices,
                kinds,
                rng,
                template,
                per="site",
                farm=index,
                site=site_index,
                room=-1,
                stem=str(site_number),
            )
            for room_number in range(1, _draw(rng, template.rooms_per_site) + 1):
                pens = _draw(rng, template.pens_per_room)
                low, high = template.pigs_per_pen
                pigs = sum(rng.integers(low, high + 1, pens).tolist())  # numpy's .sum(): 6x slower
                batch_days = _draw(rng, template.batch_days)
                empty_days = _draw(rng, template.empty_days)
                cycle = (batch_days + empty_days) * SECONDS_PER_DAY
                anchor = _BATCH_EPOCH + float(rng.uniform(0, cycle))
                room_id = f"{site_id}-r{room_number:02d}"
                room = rooms.add(
                    room_id,
                    index,
                    site_index,
                    template_index,
                    pens,
                    pigs,
                    batch_days,
                    empty_days,
                    anchor,
                )
                _add_devices(
                    devices,
                    kinds,
                    rng,
                    template,
                    per="room",
                    farm=index,
                    site=site_index,
                    room=room,
                    stem=f"{site_number}-{room_number:02d}",
                )
        farm_list.append(
            Farm(
                index=index,
                farm_id=farm_id,
                name=f"{fake.last_name()} {_farm_word(template.locale)}",
                city=city,
                country=country,
                latitude=float(latitude),
                longitude=float(longitude),
                timezone=timezone,
                template=template.name,
                site_ids=tuple(sites),
            )
        )
    rooms.freeze()
    devices.freeze()
    return Fleet(
        seed,
        tuple(farm_list),
        tuple(site_ids),
        np.array(site_farm, np.int32),
        rooms,
        devices,
        tuple(templates),
    )


def _draw(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    low, high = bounds
    return low if low == high else int(rng.integers(low, high + 1))


def _farm_word(locale: str) -> str:
    return {"nl_NL": "Varkens", "de_DE": "Schweinehof", "da_DK": "Svin"}.get(locale, "Farms")


@dataclass(frozen=True)
class _Kind:
    """What the build needs of one device type, worked out once per fleet."""

    id_prefix: str
    code: int
    versions: tuple[str, ...]
    #: the firmware shares added up: a device's version is where a uniform draw falls.
    bounds: list[float]

    @classmethod
    def of(cls, profile: DeviceProfile, code: int) -> _Kind:
        versions, shares = profile.firmware
        return cls(profile.id_prefix, code, versions, list(itertools.accumulate(shares)))

    def firmware(self, rng: np.random.Generator) -> str:
        versions = self.versions
        if len(versions) == 1:
            return versions[0]
        # A cumulative search: rng.choice(p=...) costs ten times more per call.
        index = bisect.bisect_right(self.bounds, rng.random())
        return versions[min(index, len(versions) - 1)]


def _add_devices(
    devices: DeviceTable,
    kinds: Mapping[str, _Kind],
    rng: np.random.Generator,
    template: FarmTemplate,
    *,
    per: str,
    farm: int,
    site: int,
    room: int,
    stem: str,
) -> None:
    """The devices ``template`` puts ``per`` site or room: on site ``site``, or in room
    ``room`` (-1 on a site), with ids from ``stem`` ("2" for site 2, "2-07" for its room
    7). A rule with layouts takes one of them (its positions), else a count drawn from its
    range: per site as per room."""
    for rule in template.devices:
        if rule.per != per:
            continue
        kind = kinds[rule.device_type]
        if rule.layouts:
            positions = list(rule.layouts[int(rng.integers(len(rule.layouts)))])
        else:
            positions = [str(n) for n in range(1, _draw(rng, rule.count) + 1)]
        for n, position in enumerate(positions, start=1):
            device_id = f"{kind.id_prefix}-{farm + 1:05d}-{stem}-{n}"
            devices.add(device_id, kind.code, farm, site, room, position, kind.firmware(rng))


# Listing ---------------------------------------------------------------------------
