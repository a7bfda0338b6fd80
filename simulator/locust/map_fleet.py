"""The fleet as the dashboards' users see it: its farms, their rooms and the devices in
them (with a device map, only what the product knows), for a map's ``{farm_id}``,
``{room_id}`` and ``{device_id}``. Plain Python: the Locust users and ``simulate mixed``'s
check of the map both use it."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from simulator.fleet.build import DEFAULT_SEED
from simulator.fleet.load import load_fleet


class MapFleet:
    """What users can open: farms, their rooms and the devices in them."""

    def __init__(self, farms: int, seed: int, device_map: Path | None) -> None:
        fleet, _ = load_fleet(farms, seed, None, None, device_map=device_map)
        included = fleet.included
        # With a device map, only what the product knows: its devices, their rooms, farms.
        keep = [included is None or bool(included[d]) for d in range(fleet.devices.count)]
        rooms_in = {r for d, r in enumerate(fleet.devices.room.tolist()) if keep[d] and r >= 0}
        farms_in = {f for d, f in enumerate(fleet.devices.farm.tolist()) if keep[d]}
        self.rooms: dict[str, list[str]] = {
            farm.farm_id: [] for farm in fleet.farms if included is None or farm.index in farms_in
        }
        for room, (room_id, farm) in enumerate(
            zip(fleet.rooms.ids, fleet.rooms.farm.tolist(), strict=True)
        ):
            if included is None or room in rooms_in:
                self.rooms[fleet.farms[farm].farm_id].append(room_id)
        self.devices: dict[str, list[str]] = {}
        for device, (device_id, room) in enumerate(
            zip(fleet.devices.ids, fleet.devices.room.tolist(), strict=True)
        ):
            if room >= 0 and keep[device]:
                self.devices.setdefault(fleet.rooms.ids[room], []).append(device_id)
        self.farm_ids = list(self.rooms)

    @classmethod
    def from_environment(cls) -> MapFleet:
        """The fleet of ``BARNSTORM_FARMS``, ``BARNSTORM_SEED``, ``BARNSTORM_DEVICE_MAP``."""
        mapped = os.environ.get("BARNSTORM_DEVICE_MAP")
        return cls(
            int(os.environ.get("BARNSTORM_FARMS", "10")),
            int(os.environ.get("BARNSTORM_SEED", str(DEFAULT_SEED))),
            Path(mapped) if mapped else None,
        )

    def values(self, window_days: float, now: float) -> dict[str, Any]:
        """A farm, a room of it and a device of that room, drawn at random, and a chart's
        window of ``window_days`` up to ``now``: the fleet's placeholders of one view."""
        farm_id = random.choice(self.farm_ids)
        room_id = random.choice(self.rooms[farm_id] or [""])
        return {
            "farm_id": farm_id,
            "room_id": room_id,
            "device_id": random.choice(self.devices.get(room_id) or [""]),
            "from": int(now - window_days * 86400),
            "to": int(now),
        }
