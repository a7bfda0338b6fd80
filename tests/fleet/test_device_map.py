"""--device-map: the product's provisioned devices bound to the simulated fleet, checked
before any load."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.errors import ConfigError
from simulator.fleet.build import DEFAULT_SEED
from simulator.fleet.load import load_fleet


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "devices.csv"
    path.write_text(text)
    return path


def test_rows_bind_farms_rooms_and_devices_in_order_and_the_rest_is_left_out(
    tmp_path: Path,
) -> None:
    """The product's first farm binds barnstorm's first, its rooms that farm's rooms, its
    devices devices of their room and type; they take the product's IDs, the devices no
    row names are left out of the run, and a row no device fits is counted."""
    plain, _ = load_fleet(2, DEFAULT_SEED, None, None)
    rooms = plain.devices.room.tolist()
    in_first_room = [d for d, room in enumerate(rooms) if room == 0]
    kind = plain.devices.type_names[int(plain.devices.type[in_first_room[0]])]
    lines = [
        "device_id,type,farm_id,room_id",
        f"dev-A,{kind},site-X,pen-1",
        f"dev-C,{kind},site-Y,pen-9",
        f"dev-D,{kind},site-Z,pen-5",  # a third farm: the run simulates two
    ]
    path = _write(tmp_path, "\n".join(lines) + "\n")
    fleet, _ = load_fleet(2, DEFAULT_SEED, None, None, device_map=path)
    assert fleet.device_map is not None
    assert fleet.included is not None
    assert fleet.farms[0].farm_id == "site-X"
    assert fleet.farms[1].farm_id == "site-Y"
    assert fleet.rooms.ids[0] == "pen-1"
    assert fleet.devices.ids[in_first_room[0]] == "dev-A"
    assert fleet.device_map["bound"] == 2
    assert fleet.device_map["left_out"] == fleet.devices.count - 2
    assert fleet.device_map["unused_rows"] == 1
    assert int(fleet.included.sum()) == 2
    assert "dev-C" in fleet.devices.ids


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("id,type\nx,gateway\n", "expected a column device_id"),
        ("device_id,colour\nx,red\n", 'unknown column "colour"'),
        ("device_id\nx\nx\n", 'devices.csv:3: device_id "x" is on line 2 too'),
        ("device_id,type\nx,toaster\n", 'devices.csv:2: unknown type "toaster"'),
        ("device_id,type\n,gateway\n", "devices.csv:2: no device_id"),
        ("device_id\n", "no devices"),
    ],
)
def test_a_bad_device_map_is_one_line_naming_the_file(tmp_path: Path, text: str, why: str) -> None:
    """Missing or unknown columns, a device twice, an unknown type, an empty ID or no rows:
    refused with the file (and line) and what was expected."""
    with pytest.raises(ConfigError, match=why.replace("(", r"\(")):
        load_fleet(2, DEFAULT_SEED, None, None, device_map=_write(tmp_path, text))
