"""Topics and payloads: turning a batch of readings into bytes on the wire.

Every message is one JSON object: the envelope (``device_id``, ``device_type``,
``farm_id``, ``room_id``, ``fw``, ``seq``, ``ts``, ``kind``) followed by the kind's fields
in profile order. The part of the envelope that never changes for a device is encoded
once. A tick's messages are encoded together (:meth:`PayloadEncoder.encode_many`): each
field's column is serialised in one call and split into its values, and each message is
then one ``%`` of its firmware layout's template, byte for byte what encoding it alone
(:meth:`PayloadEncoder.encode`) gives.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

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
        self._devices: dict[int, tuple[bytes, int]] = {}
        # Layout 0 is the profile's own; one more per firmware variant.
        self._layouts: list[tuple[list[str], list[int] | None, bool]] = [(self.names, None, False)]
        self._variant_layout: dict[str, int] = {}
        for version, variant in profile.variants.items():
            keep = [i for i, name in enumerate(self.names) if name not in variant.omit]
            names = [variant.rename.get(self.names[i], self.names[i]) for i in keep]
            self._variant_layout[version] = len(self._layouts)
            self._layouts.append((names, keep, variant.ts_format == "epoch"))
        self._templates = [self._template(names, epoch_ts) for names, _, epoch_ts in self._layouts]

    def _template(self, names: list[str], epoch_ts: bool) -> bytes:
        """A layout's message with a ``%`` slot for each of head, seq, time stamp (``%d``:
        whole epoch seconds for firmware that writes them) and field value."""
        start = b'%s%d,"ts":' + (b"%d" if epoch_ts else b"%s")
        if not names:
            return start + _literal(self.kind_tail[:-1]) + b"}"
        fields = b",".join(_literal(orjson.dumps(name)) + b":%s" for name in names)
        return start + _literal(self.kind_tail) + fields + b"}"

    def _device(self, device: int) -> tuple[bytes, int]:
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
            layout = self._variant_layout.get(table.firmware[device], 0)
            cached = (orjson.dumps(head)[:-1] + b',"seq":', layout)
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
        head, layout = self._devices.get(device) or self._device(device)
        names, keep, epoch_ts = self._layouts[layout]
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

    def encode_many(
        self,
        devices: list[int],
        seqs: list[int],
        stamps: list[bytes],
        epochs: list[float],
        columns: list[list[object]],
        missing: Sequence[Sequence[bool] | None] | None = None,
    ) -> list[bytes]:
        """The messages of one schedule's readings, exactly as :meth:`encode` gives each:
        ``columns`` holds each field's values (see :meth:`columns`), ``missing`` per message
        the fields it leaves out (None: none)."""
        count = len(devices)
        if not count:
            return []
        cached = self._devices
        found = [cached.get(device) or self._device(device) for device in devices]
        heads = list(map(_HEAD, found))
        values = [_json_values(column) for column in columns]
        layouts = set(map(_LAYOUT, found))
        if len(layouts) == 1:
            payloads = self._fill(layouts.pop(), range(count), heads, seqs, stamps, epochs, values)
        else:
            payloads = [b""] * count
            per_layout: dict[int, list[int]] = {}
            for at, layout in enumerate(map(_LAYOUT, found)):
                per_layout.setdefault(layout, []).append(at)
            for layout, where in per_layout.items():
                filled = self._fill(layout, where, heads, seqs, stamps, epochs, values)
                for at, payload in zip(where, filled, strict=True):
                    payloads[at] = payload
        if missing is not None:
            for at, gaps in enumerate(missing):
                if gaps is not None:
                    row = [column[at] for column in columns]
                    payloads[at] = self.encode(
                        devices[at], seqs[at], stamps[at], epochs[at], row, gaps
                    )
        return payloads

    def _fill(
        self,
        layout: int,
        where: range | list[int],
        heads: list[bytes],
        seqs: list[int],
        stamps: list[bytes],
        epochs: list[float],
        values: list[list[bytes]],
    ) -> list[bytes]:
        """The messages at positions ``where``, all of one firmware layout."""
        _, keep, epoch_ts = self._layouts[layout]
        fields: list[Sequence[bytes]] = [*values] if keep is None else [values[i] for i in keep]
        times: Sequence[float | bytes] = epochs if epoch_ts else stamps
        envelope: tuple[Sequence[bytes], Sequence[int], Sequence[float | bytes]] = (
            heads,
            seqs,
            times,
        )
        if isinstance(where, list):
            pick = _picker(where)
            envelope = (pick(heads), pick(seqs), pick(times))
            fields = [pick(column) for column in fields]
        template = self._templates[layout]
        return [template % args for args in zip(*envelope, *fields, strict=True)]


_HEAD = operator.itemgetter(0)
_LAYOUT = operator.itemgetter(1)


def _literal(data: bytes) -> bytes:
    """``data`` as constant text of a ``%`` template."""
    return data.replace(b"%", b"%%")


def _json_values(column: list[object]) -> list[bytes]:
    """Each value of ``column`` as JSON, as ``orjson`` writes it inside an object: the
    column serialised in one call and split at its commas, unless a value holds a comma of
    its own (a string, say), which the count of pieces shows; then value by value."""
    if not column:
        return []
    pieces = orjson.dumps(column)[1:-1].split(b",")
    if len(pieces) == len(column):
        return pieces
    return [orjson.dumps(value) for value in column]


def _picker(where: list[int]) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """Takes the items at ``where`` (in that order) out of a sequence."""
    if len(where) == 1:
        (only,) = where
        return lambda items: (items[only],)
    get = operator.itemgetter(*where)
    return lambda items: get(items)


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
