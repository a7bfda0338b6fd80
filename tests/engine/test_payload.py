"""Payload encoding: a tick's messages encoded together are byte for byte what encoding each
alone gives, and both are the JSON object the envelope and the firmware layout promise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simulator.engine.payload import PayloadEncoder
from simulator.errors import ConfigError
from simulator.fleet.build import Fleet
from simulator.fleet.load import load_fleet
from simulator.fleet.profiles import DeviceProfile, FieldSpec, load_profile
from simulator.units import iso_stamp_bytes

# Values a column can hold once ``PayloadEncoder.columns`` made them plain: strings with the
# characters that split, quote or format (a comma, a quote, a percent sign), gaps, bools.
ROOT = Path(__file__).resolve().parents[2]
AWKWARD = ["green", "a,b", 'say "hi"', "100%", "", "ü,ß", "%s%d"]


def _fleet() -> tuple[Fleet, dict[str, DeviceProfile]]:
    return load_fleet(40, 5, None, None)


def _columns(fields: tuple[FieldSpec, ...], count: int, seed: int) -> list[list[object]]:
    """Plain values per field, of every type a column holds, gaps included."""
    rng = np.random.default_rng(seed)
    columns: list[list[object]] = []
    for n, _ in enumerate(fields):
        kind = n % 4
        column: list[object]
        if kind == 0:
            column = np.round(rng.normal(20, 5, count), 1).tolist()
        elif kind == 1:
            column = rng.integers(-5, 5000, count).tolist()
        elif kind == 2:
            column = [AWKWARD[i % len(AWKWARD)] for i in rng.integers(0, 99, count).tolist()]
        else:
            column = [bool(b) for b in rng.integers(0, 2, count).tolist()]
        for gap in rng.integers(0, count, max(count // 10, 1)).tolist():
            column[gap] = None
        columns.append(column)
    return columns


def _expected(
    fleet: Fleet,
    profile: DeviceProfile,
    kind: str,
    fields: tuple[FieldSpec, ...],
    device: int,
    seq: int,
    epoch: float,
    stamp: str,
    row: list[object],
    gaps: list[bool] | None,
) -> dict[str, Any]:
    """The message as the envelope and the device's firmware layout describe it."""
    table = fleet.devices
    firmware = table.firmware[device]
    variant = profile.variants.get(firmware)
    message: dict[str, Any] = {
        "device_id": table.ids[device],
        "device_type": profile.device_type,
        "farm_id": fleet.farms[int(table.farm[device])].farm_id,
        "room_id": fleet.room_of(device),
        "fw": firmware,
        "seq": seq,
        "ts": int(epoch) if variant is not None and variant.ts_format == "epoch" else stamp,
        "kind": kind,
    }
    for i, field in enumerate(fields):
        if (gaps is not None and gaps[i]) or (variant is not None and field.name in variant.omit):
            continue
        name = variant.rename.get(field.name, field.name) if variant is not None else field.name
        message[name] = row[i]
    return message


@pytest.mark.parametrize("with_gaps", [False, True])
def test_a_batch_encodes_as_each_message_alone_and_as_its_layout_says(with_gaps: bool) -> None:
    """For every device type and kind of the shipped profiles, over devices of every
    firmware layout: ``encode_many`` equals ``encode`` message by message, and each payload
    parses to the envelope and fields its firmware promises (omitted, renamed, epoch time)."""
    fleet, profiles = _fleet()
    layouts_seen = 0
    for profile in profiles.values():
        devices = fleet.devices.of_type(profile.device_type)
        # Every device twice, out of order, as a tick fires them.
        order = np.random.default_rng(3).permutation(np.r_[devices, devices]).tolist()
        count = len(order)
        epochs = (1_767_225_600.0 + np.arange(count) * 61.7).tolist()
        stamps = iso_stamp_bytes(np.array(epochs))
        seqs = list(range(count))
        for spec in profile.messages.values():
            encoder = PayloadEncoder(fleet, profile, spec.kind, spec.fields)
            columns = _columns(spec.fields, count, seed=count)
            missing: list[list[bool] | None] | None = None
            if with_gaps:
                rng = np.random.default_rng(11)
                missing = [
                    rng.random(len(spec.fields)).__lt__(0.3).tolist() if i % 5 == 0 else None
                    for i in range(count)
                ]
            payloads = encoder.encode_many(order, seqs, stamps, epochs, columns, missing)
            assert len(payloads) == count
            for at, payload in enumerate(payloads):
                row = [column[at] for column in columns]
                gaps = missing[at] if missing is not None else None
                alone = encoder.encode(order[at], seqs[at], stamps[at], epochs[at], row, gaps)
                assert payload == alone
                stamp = json.loads(stamps[at])
                expected = _expected(
                    fleet,
                    profile,
                    spec.kind,
                    spec.fields,
                    order[at],
                    at,
                    epochs[at],
                    stamp,
                    row,
                    gaps,
                )
                assert json.loads(payload) == expected
                assert list(json.loads(payload)) == list(expected)  # the key order too
            layouts_seen = max(layouts_seen, len({fleet.devices.firmware[d] for d in order}))
    assert layouts_seen > 1  # the fleet had devices of more than one firmware


def test_a_kind_without_fields_is_its_envelope() -> None:
    """A message kind with no fields (a heartbeat, say) encodes to the envelope alone, in
    a batch as alone."""
    fleet, profiles = _fleet()
    profile = next(iter(profiles.values()))
    encoder = PayloadEncoder(fleet, profile, "heartbeat", ())
    devices = fleet.devices.of_type(profile.device_type)[:3].tolist()
    stamps = iso_stamp_bytes(np.array([1_767_225_600.5] * 3))
    payloads = encoder.encode_many(devices, [7, 8, 9], stamps, [1_767_225_600.5] * 3, [])
    for device, seq, payload in zip(devices, [7, 8, 9], payloads, strict=True):
        assert payload == encoder.encode(device, seq, stamps[0], 1_767_225_600.5, [])
        decoded = json.loads(payload)
        assert decoded["kind"] == "heartbeat"
        assert decoded["seq"] == seq
        assert list(decoded)[-1] == "kind"


def test_a_firmware_that_renames_a_field_onto_another_is_refused(tmp_path: Path) -> None:
    """A firmware variant renaming a field to a name its payload already holds would send
    two values under one key: the profile is refused, naming the file and the key."""
    shipped = (ROOT / "device_profiles" / "cough_monitor.toml").read_text()
    assert 'rename = { sound_leq_dba = "sound_db" }' in shipped
    clash = tmp_path / "cough_monitor.toml"
    clash.write_text(shipped.replace('"sound_db"', '"temp_c_1"'))
    with pytest.raises(ConfigError, match=r"cough_monitor.toml.*sound_leq_dba.*temp_c_1"):
        load_profile(clash)
    # Onto a name the variant leaves out, or onto its own name, there is no clash.
    clash.write_text(shipped.replace('"sound_db"', '"temp_c_2"'))
    assert load_profile(clash).variants["3.9.0"].rename == {"sound_leq_dba": "temp_c_2"}
    clash.write_text(shipped.replace('"sound_db"', '"sound_leq_dba"'))
    assert load_profile(clash).variants["3.9.0"].rename == {"sound_leq_dba": "sound_leq_dba"}
