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
from datetime import UTC, datetime
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from faker import Faker

from simulator.arrays import SECONDS_PER_DAY, FloatArray, IntArray
from simulator.errors import ConfigError
from simulator.fleet.farms import FarmTemplate
from simulator.fleet.profiles import DeviceProfile

DEFAULT_SEED = 20261128
# Batch schedules are anchored here, not at the run's start, so a room is at the same
# point of its batch at a given date whatever --start a run uses.
_BATCH_EPOCH = datetime(2020, 1, 6, tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class Farm:
    """One farm: its identity and place; its rooms and devices live in the tables."""

    index: int
    farm_id: str
    name: str
    city: str
    country: str
    latitude: float
    longitude: float
    timezone: str
    template: str
    site_ids: tuple[str, ...]


class RoomTable:
    """Every room of the fleet as parallel arrays (index = room number in the fleet)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self._farm: list[int] = []
        self._site: list[int] = []
        self._template: list[int] = []
        self._pens: list[int] = []
        self._pigs: list[int] = []
        self._batch_days: list[int] = []
        self._empty_days: list[int] = []
        self._anchor: list[float] = []

    def add(
        self,
        room_id: str,
        farm: int,
        site: int,
        template: int,
        pens: int,
        pigs: int,
        batch_days: int,
        empty_days: int,
        anchor: float,
    ) -> int:
        self.ids.append(room_id)
        self._farm.append(farm)
        self._site.append(site)
        self._template.append(template)
        self._pens.append(pens)
        self._pigs.append(pigs)
        self._batch_days.append(batch_days)
        self._empty_days.append(empty_days)
        self._anchor.append(anchor)
        return len(self.ids) - 1

    def freeze(self) -> None:
        self.farm = np.array(self._farm, np.int32)
        self.site = np.array(self._site, np.int32)
        self.template = np.array(self._template, np.int16)
        self.pens = np.array(self._pens, np.int32)
        self.pigs = np.array(self._pigs, np.int32)
        self.batch_days = np.array(self._batch_days, np.float64)
        self.empty_days = np.array(self._empty_days, np.float64)
        #: the instant one of the room's batches was placed; batches repeat every
        #: batch_days + empty_days days (all-in/all-out).
        self.anchor = np.array(self._anchor, np.float64)

    @property
    def count(self) -> int:
        return len(self.ids)

    def age_days(self, rooms: IntArray, times: FloatArray) -> FloatArray:
        """Days since the current batch of each room was placed (NaN where room < 0)."""
        safe = np.maximum(rooms, 0)
        cycle = self.batch_days[safe] + self.empty_days[safe]
        age = np.mod((times - self.anchor[safe]) / SECONDS_PER_DAY, cycle)
        return np.asarray(np.where(rooms >= 0, age, np.nan), np.float64)


class DeviceTable:
    """Every device of the fleet as parallel arrays (index = device number in the fleet)."""

    def __init__(self, type_names: Sequence[str]) -> None:
        self.type_names = tuple(type_names)
        self.ids: list[str] = []
        self.client_ids: list[str] = []
        self.positions: list[str] = []
        self.firmware: list[str] = []
        self._type: list[int] = []
        self._farm: list[int] = []
        self._site: list[int] = []
        self._room: list[int] = []

    def add(
        self,
        device_id: str,
        type_code: int,
        farm: int,
        site: int,
        room: int,
        position: str,
        firmware: str,
    ) -> None:
        self.ids.append(device_id)
        self.client_ids.append(f"barnstorm-{device_id}")
        self.positions.append(position)
        self.firmware.append(firmware)
        self._type.append(type_code)
        self._farm.append(farm)
        self._site.append(site)
        self._room.append(room)

    def freeze(self) -> None:
        self.type = np.array(self._type, np.int16)
        self.farm = np.array(self._farm, np.int32)
        self.site = np.array(self._site, np.int32)
        self.room = np.array(self._room, np.int32)  # -1: not in a room (gateways)

    @property
    def count(self) -> int:
        return len(self.ids)

    def of_type(self, device_type: str) -> IntArray:
        code = self.type_names.index(device_type)
        return np.flatnonzero(self.type == code).astype(np.int64)


@dataclass(frozen=True, eq=False)
class Fleet:
    """The whole simulated fleet."""

    seed: int
    farms: tuple[Farm, ...]
    site_ids: tuple[str, ...]
    site_farm: npt.NDArray[np.int32]
    rooms: RoomTable
    devices: DeviceTable
    templates: tuple[FarmTemplate, ...]
    #: the devices a run sends for (None: all); a device map (``--device-map``) leaves out
    #: those the product has not provisioned.
    included: npt.NDArray[np.bool_] | None = None
    #: what the device map bound and left out, for the report (None: no map).
    device_map: dict[str, Any] | None = None

    def utc_offsets(self, at: float) -> FloatArray:
        """Each farm's UTC offset in seconds at instant ``at`` (DST as of that instant)."""
        cache: dict[str, float] = {}
        moment = datetime.fromtimestamp(at, UTC)
        offsets = []
        for farm in self.farms:
            if farm.timezone not in cache:
                local = moment.astimezone(ZoneInfo(farm.timezone))
                delta = local.utcoffset()
                cache[farm.timezone] = delta.total_seconds() if delta else 0.0
            offsets.append(cache[farm.timezone])
        return np.array(offsets, np.float64)

    @cached_property
    def farm_latitude(self) -> FloatArray:
        return np.array([farm.latitude for farm in self.farms], np.float64)

    def room_of(self, device: int) -> str | None:
        room = int(self.devices.room[device])
        return self.rooms.ids[room] if room >= 0 else None

    @cached_property
    def _site_gateway(self) -> npt.NDArray[np.int64]:
        # The first device of each site is its gateway (or its first device when a
        # template has no gateway); devices are laid out site by site.
        site = self.devices.site
        first = np.full(len(self.site_ids), -1, np.int64)
        order = np.arange(len(site))[::-1]
        first[site[order]] = order
        return first

    def connection_owners(self, per_gateway: bool) -> npt.NDArray[np.int64]:
        """For each device, the device whose connection it publishes on."""
        if not per_gateway:
            return np.arange(self.devices.count, dtype=np.int64)
        return self._site_gateway[self.devices.site].astype(np.int64)


#: The only Faker providers a fleet draws from (places, and family names for farm names):
#: Faker loads all of its providers for a locale unless told, about 40 ms per locale.
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
