"""The fleet as a listing (``simulate fleet``): one record per device, as JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping

from simulator.fleet.build import Fleet
from simulator.fleet.profiles import DeviceProfile


def fleet_records(
    fleet: Fleet,
    profiles: Mapping[str, DeviceProfile],
    topic_template: str,
    listed: Callable[[int], None] | None = None,
) -> list[dict[str, object]]:
    """One flat record per device: what other tools need to address it (``listed(n)``
    after every thousand, a progress bar's count)."""
    from simulator.fleet.topics import device_topic

    records: list[dict[str, object]] = []
    table = fleet.devices
    for i in range(table.count):
        if listed is not None and i % 1000 == 999:
            listed(1000)
        farm = fleet.farms[int(table.farm[i])]
        device_type = table.type_names[int(table.type[i])]
        room = fleet.room_of(i)
        site_id = fleet.site_ids[int(table.site[i])]
        records.append(
            {
                "farm_id": farm.farm_id,
                "farm_name": farm.name,
                "city": farm.city,
                "country": farm.country,
                "timezone": farm.timezone,
                "site_id": site_id,
                "room_id": room,
                "device_id": table.ids[i],
                "device_type": device_type,
                "position": table.positions[i],
                "firmware": table.firmware[i],
                "client_id": table.client_ids[i],
                "topics": [
                    device_topic(topic_template, fleet, i, device_type, kind)
                    for kind in profiles[device_type].messages
                ],
            }
        )
    return records


def fleet_json(
    fleet: Fleet,
    profiles: Mapping[str, DeviceProfile],
    topic_template: str,
    listed: Callable[[int], None] | None = None,
) -> str:
    """The fleet as nested JSON: farms with their sites, rooms and devices."""
    rooms_by_farm: dict[int, list[dict[str, object]]] = {}
    for r, room_id in enumerate(fleet.rooms.ids):
        rooms_by_farm.setdefault(int(fleet.rooms.farm[r]), []).append(
            {
                "room_id": room_id,
                "site_id": fleet.site_ids[int(fleet.rooms.site[r])],
                "pens": int(fleet.rooms.pens[r]),
                "pigs": int(fleet.rooms.pigs[r]),
                "stage": fleet.templates[int(fleet.rooms.template[r])].stage,
                "batch_days": int(fleet.rooms.batch_days[r]),
            }
        )
    devices_by_farm: dict[str, list[dict[str, object]]] = {}
    for record in fleet_records(fleet, profiles, topic_template, listed):
        devices_by_farm.setdefault(str(record["farm_id"]), []).append(
            {
                key: record[key]
                for key in (
                    "device_id",
                    "device_type",
                    "site_id",
                    "room_id",
                    "position",
                    "firmware",
                    "client_id",
                    "topics",
                )
            }
        )
    document = {
        "seed": fleet.seed,
        "farms": [
            {
                "farm_id": farm.farm_id,
                "name": farm.name,
                "city": farm.city,
                "country": farm.country,
                "latitude": farm.latitude,
                "longitude": farm.longitude,
                "timezone": farm.timezone,
                "template": farm.template,
                "sites": list(farm.site_ids),
                "rooms": rooms_by_farm.get(farm.index, []),
                "devices": devices_by_farm.get(farm.farm_id, []),
            }
            for farm in fleet.farms
        ],
    }
    return json.dumps(document, indent=1, ensure_ascii=False)


def fleet_csv(
    fleet: Fleet,
    profiles: Mapping[str, DeviceProfile],
    topic_template: str,
    listed: Callable[[int], None] | None = None,
) -> str:
    """The fleet as CSV, one row per device (topics joined with spaces)."""
    records = fleet_records(fleet, profiles, topic_template, listed)
    out = io.StringIO()
    columns = list(records[0]) if records else ["device_id"]
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    for record in records:
        row = dict(record)
        row["topics"] = " ".join(str(t) for t in record["topics"])  # type: ignore[attr-defined]
        row["room_id"] = record["room_id"] or ""
        writer.writerow(row)
    return out.getvalue()
