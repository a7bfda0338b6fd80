"""The fleet's data: farms, and rooms and devices as tables of numpy arrays (struct of
arrays) with their string ids in lists; the :class:`Fleet` that holds them. Plain data
that the signal models, the engine and the listings read; :mod:`.build` makes it from
templates, profiles and a seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from simulator.arrays import SECONDS_PER_DAY, FloatArray, IntArray
from simulator.fleet.farms import FarmTemplate

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
