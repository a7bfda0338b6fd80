"""Parsing the units people type: durations, speeds and instants."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str) -> float:
    """Seconds in ``"90s"``, ``"15m"``, ``"1h30m"``, ``"365d"`` or a bare ``"30"`` (seconds)."""
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned:
        raise ValueError('expected a duration such as "30s", "15m", "8h" or "365d", got ""')
    try:
        return float(cleaned)
    except ValueError:
        pass
    position = 0
    total = 0.0
    for match in _DURATION_PART.finditer(cleaned):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(cleaned) or position == 0:
        raise ValueError(f'expected a duration such as "30s", "15m", "8h" or "365d", got "{text}"')
    return total


def format_duration(seconds: float) -> str:
    """A short human form: ``"1h30m"``, ``"45s"``, ``"365d"``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    remaining = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def parse_speed(text: str) -> float | None:
    """A speed factor (``"1"``, ``"60"``) or ``"max"`` (None: as fast as possible)."""
    cleaned = text.strip().lower()
    if cleaned == "max":
        return None
    try:
        speed = float(cleaned.rstrip("x"))
    except ValueError:
        raise ValueError(f'expected a number > 0 or "max", got "{text}"') from None
    if not speed > 0 or speed == float("inf"):
        raise ValueError(f'expected a number > 0 or "max", got "{text}"')
    return speed


def parse_instant(text: str) -> float:
    """Epoch seconds of an ISO 8601 date or date-time; naive values are UTC."""
    cleaned = text.strip()
    try:
        moment = datetime.fromisoformat(cleaned.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f'expected an ISO 8601 date or time such as "2026-01-01" or '
            f'"2026-01-01T06:00:00Z", got "{text}"'
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def iso_utc(epoch: float) -> str:
    """``2026-01-01T06:00:00.000Z`` for an epoch instant."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_stamp_bytes(epochs: npt.NDArray[np.float64]) -> list[bytes]:
    """JSON string literals (quotes included) of :func:`iso_utc` for many instants."""
    millis = np.floor(epochs * 1000.0).astype("datetime64[ms]")
    text = np.datetime_as_string(millis, unit="ms").astype("S23")
    return [b'"%sZ"' % stamp for stamp in text.tolist()]
