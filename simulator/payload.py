"""Topics and payloads: turning a batch of readings into bytes on the wire.

Every message is one JSON object: the envelope (``device_id``, ``device_type``,
``farm_id``, ``room_id``, ``fw``, ``seq``, ``ts``, ``kind``) followed by the kind's fields
in profile order. The part of the envelope that never changes for a device is encoded
once, so a message costs one ``json.dumps`` of its readings.
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .errors import ConfigError
from .fleet import Fleet
from .models.base import Values
from .profiles import FieldSpec

TOPIC_PLACEHOLDERS = ("farm_id", "room_id", "device_type", "device_id", "kind", "site_id")
DEFAULT_TOPIC_TEMPLATE = "barnstorm/{farm_id}/{room_id}/{device_type}/{device_id}/{kind}"

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def check_topic_template(template: str, where: str = "--topic-template") -> str:
    """Validate a topic template: known placeholders only, no MQTT wildcards."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ConfigError(where, f'"{template}" is not a valid template ({exc})') from None
    for name in names:
        if name not in TOPIC_PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in TOPIC_PLACEHOLDERS)
            raise ConfigError(where, f'unknown placeholder "{{{name}}}" (known: {known})')
    if "#" in template or "+" in template or not template:
        raise ConfigError(where, f'"{template}" is empty or holds an MQTT wildcard (# or +)')
    return template


def render_topic(
    template: str,
    farm_id: str,
    room_id: str,
    device_type: str,
    device_id: str,
    kind: str,
    site_id: str = "",
) -> str:
    """A device's topic; gateways, which have no room, use their site id as ``room_id``."""
    return template.format(
        farm_id=farm_id,
        room_id=room_id,
        device_type=device_type,
        device_id=device_id,
        kind=kind,
        site_id=site_id,
    )


def subscription_filter(template: str) -> str:
    """A wildcard filter matching every topic the template can render."""
    levels = []
    for level in template.split("/"):
        levels.append("+" if "{" in level else level)
    return "/".join(levels)


class PayloadEncoder:
    """Encodes the messages of one (device type, kind) into JSON bytes."""

    def __init__(
        self, fleet: Fleet, device_type: str, kind: str, fields: Sequence[FieldSpec]
    ) -> None:
        self.fleet = fleet
        self.kind_json = _dumps(kind)
        self.names = [field.name for field in fields]
        self.decimals = [field.decimals for field in fields]
        self._prefix: dict[int, str] = {}
        self.device_type = device_type

    def prefix(self, device: int) -> str:
        """The constant head of a device's messages, up to ``"seq":``."""
        cached = self._prefix.get(device)
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
            cached = _dumps(head)[:-1] + ',"seq":'
            self._prefix[device] = cached
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
                    plain = [
                        None if missing else v
                        for v, missing in zip(
                            plain, np.asarray(nan, np.bool_).tolist(), strict=True
                        )
                    ]
            else:
                plain = array.tolist()
            columns.append(plain)
        return columns

    def encode(self, device: int, seq: int, ts: str, row: Sequence[object]) -> bytes:
        body = _dumps(dict(zip(self.names, row, strict=True)))
        return f'{self.prefix(device)}{seq},"ts":"{ts}","kind":{self.kind_json},{body[1:]}'.encode()
