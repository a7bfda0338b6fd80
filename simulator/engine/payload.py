"""Topics and payloads: turning a batch of readings into bytes on the wire.

Every message is one JSON object: the envelope (``device_id``, ``device_type``,
``farm_id``, ``room_id``, ``fw``, ``seq``, ``ts``, ``kind``) followed by the kind's fields
in profile order. The part of the envelope that never changes for a device is encoded
once, so a message costs one ``json.dumps`` of its readings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import orjson

from simulator.arrays import Values
from simulator.fleet.build import Fleet
from simulator.fleet.profiles import DeviceProfile, FieldSpec


class PayloadEncoder:
    """Encodes the messages of one (device type, kind) into JSON bytes.

    Firmware variants of the profile change the payload per device (fields left out or
    renamed, a different timestamp format); missing fields are left out per message.
    """

    def __init__(
        self, fleet: Fleet, profile: DeviceProfile, kind: str, fields: Sequence[FieldSpec]
    ) -> None:
        self.fleet = fleet
        self.device_type = profile.device_type
        self.kind_tail = b',"kind":' + orjson.dumps(kind) + b","
        self.names = [field.name for field in fields]
        self.decimals = [field.decimals for field in fields]
        self._devices: dict[int, tuple[bytes, list[str], list[int] | None, bool]] = {}
        # Layout 0 is the profile's own; one more per firmware variant.
        self._layouts: list[tuple[list[str], list[int] | None, bool]] = [(self.names, None, False)]
        self._variant_layout: dict[str, int] = {}
        for version, variant in profile.variants.items():
            keep = [i for i, name in enumerate(self.names) if name not in variant.omit]
            names = [variant.rename.get(self.names[i], self.names[i]) for i in keep]
            self._variant_layout[version] = len(self._layouts)
            self._layouts.append((names, keep, variant.ts_format == "epoch"))

    def _device(self, device: int) -> tuple[bytes, list[str], list[int] | None, bool]:
        """A device's constant head (up to ``"seq":``) and its firmware's payload layout."""
        cached = self._devices.get(device)
        if cached is None:
            table = self.fleet.devices
            farm = self.fleet.farms[int(table.farm[device])]
            head = {
                "device_id": table.ids[device],
                "device_type": self.device_type,
                "farm_id": farm.farm_id,
                "room_id": self.fleet.room_of(device),
                "fw": table.firmware[device],
            }
            names, keep, epoch_ts = self._layouts[
                self._variant_layout.get(table.firmware[device], 0)
            ]
            cached = (orjson.dumps(head)[:-1] + b',"seq":', names, keep, epoch_ts)
            self._devices[device] = cached
        return cached

    def columns(self, values: Sequence[Values]) -> list[list[object]]:
        """Plain Python values per field: rounded floats, ints, bools, strings, None for NaN."""
        columns: list[list[object]] = []
        for column, decimals in zip(values, self.decimals, strict=True):
            array = np.asarray(column)
            if array.dtype.kind == "f":
                floats: npt.NDArray[np.float64] = np.asarray(array, np.float64)
                nan = np.isnan(floats)
                if decimals == 0:
                    plain: list[object] = np.where(nan, 0, floats).astype(np.int64).tolist()
                else:
                    rounded = np.round(floats, decimals) if decimals is not None else floats
                    plain = rounded.tolist()
                if nan.any():
                    flags = np.asarray(nan, np.bool_).tolist()
                    plain = [None if gap else v for v, gap in zip(plain, flags, strict=True)]
            else:
                plain = array.tolist()
            columns.append(plain)
        return columns

    def encode(
        self,
        device: int,
        seq: int,
        stamp: bytes,
        epoch: float,
        row: Sequence[object],
        missing: Sequence[bool] | None = None,
    ) -> bytes:
        """One message: envelope, then the fields (``missing`` marks fields left out).

        ``stamp`` is the ISO 8601 time as a JSON string literal; ``epoch`` the same instant
        in seconds, for firmware that writes epoch timestamps.
        """
        head, names, keep, epoch_ts = self._devices.get(device) or self._device(device)
        if keep is None and missing is None:
            body = orjson.dumps(dict(zip(names, row, strict=False)))
        else:
            indices = keep if keep is not None else range(len(row))
            body = orjson.dumps(
                {
                    name: row[i]
                    for name, i in zip(names, indices, strict=True)
                    if missing is None or not missing[i]
                }
            )
        if epoch_ts:
            stamp = b"%d" % int(epoch)
        if len(body) > 2:
            return b'%s%d,"ts":%s%s%s' % (head, seq, stamp, self.kind_tail, body[1:])
        return b'%s%d,"ts":%s%s}' % (head, seq, stamp, self.kind_tail[:-1])


MALFORMATIONS = ("truncated", "not_json", "wrong_types", "missing_envelope", "empty", "oversized")


def malform(payload: bytes, how: str) -> bytes:
    """A broken copy of ``payload``, as a buggy device or a corrupting link would send it."""
    if how == "truncated":
        return payload[: max(1, len(payload) // 2)]
    if how == "not_json":
        return b"\xff\xfe<html>502 Bad Gateway</html>"
    if how == "empty":
        return b""
    data = orjson.loads(payload)
    if how == "wrong_types":
        data["seq"] = str(data.get("seq"))
        data["ts"] = 12345
        for key, value in data.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and key != "ts":
                data[key] = f"{value}"
    elif how == "missing_envelope":
        for key in ("device_id", "ts"):
            data.pop(key, None)
    elif how == "oversized":
        data["debug_dump"] = "A" * 65536
    else:
        raise ValueError(f"unknown malformation {how!r}")
    return orjson.dumps(data)
