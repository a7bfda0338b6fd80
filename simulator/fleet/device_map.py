"""Devices the product knows (``--device-map FILE``): barnstorm's simulated devices bound to
the IDs a real backend has provisioned, so that their messages arrive under IDs it accepts,
and dashboards and devices meet on the same farms.

The file is a CSV the team exports, one provisioned device a row::

    device_id,type,farm_id,room_id
    7f0c...,cough_monitor,site-uuid-1,pen-uuid-4

``device_id`` is required; ``type`` (a barnstorm device type), ``farm_id`` and ``room_id``
(the product's) are optional. Rows bind in order: the product's farms, in the order they
first appear, to barnstorm's farms (the first to ``farm-00001``...), each farm's rooms to
that farm's rooms, each room's devices to devices of that room of the same type. The
bound farms, rooms and devices take the product's IDs (in payloads, topics, client ids
and the dashboards' placeholders); a simulated device no row names is left out of the run
and counted, never sent under an invented ID; a row no simulated device fits (more farms
or rooms than the run simulates, a type with no device there) is counted too.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from simulator.errors import ConfigError
from simulator.fleet.build import Fleet

COLUMNS = ("device_id", "type", "farm_id", "room_id")


@dataclass(frozen=True)
class Row:
    line: int
    device_id: str
    type: str | None
    farm_id: str | None
    room_id: str | None


@dataclass(frozen=True)
class DeviceMap:
    source: str
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Binding:
    """What the map did to a fleet: the devices in the run, and what was left over."""

    included: npt.NDArray[np.bool_]
    bound: int
    left_out: int
    unused_rows: int
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.source,
            "bound": self.bound,
            "left_out": self.left_out,
            "unused_rows": self.unused_rows,
        }


def load_device_map(path: Path, type_names: tuple[str, ...]) -> DeviceMap:
    """Read and check a device map; errors name the file (and line) and what was expected."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("--device-map", f"cannot read {path}: {exc}") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or []]
    if "device_id" not in header:
        raise ConfigError(
            str(path),
            f"expected a column device_id (and optionally type, farm_id, room_id), "
            f"got {', '.join(header) or 'nothing'}",
        )
    unknown = [name for name in header if name not in COLUMNS]
    if unknown:
        raise ConfigError(str(path), f'unknown column "{unknown[0]}" (known: {", ".join(COLUMNS)})')
    rows: list[Row] = []
    seen: dict[str, int] = {}
    try:
        records = list(reader)
    except csv.Error as exc:
        raise ConfigError(str(path), f"not a CSV: {exc}") from None
    for line, record in enumerate(records, start=2):
        values = {k.strip(): (v or "").strip() for k, v in record.items() if k}
        device = values.get("device_id", "")
        if not device:
            raise ConfigError(f"{path}:{line}", "no device_id")
        if device in seen:
            raise ConfigError(
                f"{path}:{line}", f'device_id "{device}" is on line {seen[device]} too'
            )
        seen[device] = line
        kind = values.get("type") or None
        if kind is not None and kind not in type_names:
            raise ConfigError(
                f"{path}:{line}", f'unknown type "{kind}" (known: {", ".join(type_names)})'
            )
        rows.append(
            Row(line, device, kind, values.get("farm_id") or None, values.get("room_id") or None)
        )
    if not rows:
        raise ConfigError(str(path), "no devices: expected one provisioned device a row")
    return DeviceMap(str(path), tuple(rows))


def bind(fleet: Fleet, device_map: DeviceMap) -> tuple[Fleet, Binding]:
    """The fleet with the map's IDs on the devices it binds (and their farms and rooms),
    and which devices the run keeps."""
    devices, rooms = fleet.devices, fleet.rooms
    taken = np.zeros(devices.count, np.bool_)
    farm_names: dict[str | None, int] = {}
    room_names: dict[tuple[int, str], int] = {}
    farm_ids = [farm.farm_id for farm in fleet.farms]
    unused = 0
    for row in device_map.rows:
        farm = farm_names.get(row.farm_id)
        if farm is None:
            farm = len(farm_names)
            if farm >= len(fleet.farms):
                unused += 1
                continue
            farm_names[row.farm_id] = farm
            if row.farm_id is not None:
                farm_ids[farm] = row.farm_id
        candidates = devices.farm == farm
        if row.room_id is not None:
            room = room_names.get((farm, row.room_id))
            if room is None:
                own = [
                    r
                    for r in np.flatnonzero(rooms.farm == farm).tolist()
                    if r not in room_names.values()
                ]
                if not own:
                    unused += 1
                    continue
                room = room_names[(farm, row.room_id)] = own[0]
                rooms.ids[room] = row.room_id
            candidates &= devices.room == room
        if row.type is not None:
            candidates &= devices.type == devices.type_names.index(row.type)
        free = np.flatnonzero(candidates & ~taken)
        if not len(free):
            unused += 1
            continue
        device = int(free[0])
        taken[device] = True
        devices.ids[device] = row.device_id
        devices.client_ids[device] = f"barnstorm-{row.device_id}"
    farms = tuple(dataclasses.replace(farm, farm_id=farm_ids[farm.index]) for farm in fleet.farms)
    bound = int(taken.sum())
    binding = Binding(taken, bound, devices.count - bound, unused, device_map.source)
    return dataclasses.replace(fleet, farms=farms), binding
