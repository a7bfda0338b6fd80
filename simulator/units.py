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
    cleaned = text.strip().upper()  # RFC 3339 allows "t" and "z"
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


#: the byte layout of a stamp: '"2026-01-01T06:00:00.000Z"', digits filled in.
_STAMP = np.frombuffer(b'"0000-00-00T00:00:00.000Z"', np.uint8)
#: (column, divisor) of each digit in the stamp, for year, month, day, hour ... millisecond.
_DIGITS = [
    (field, [(column, 10**power) for column, power in zip(columns, powers, strict=True)])
    for field, columns, powers in (
        (0, (1, 2, 3, 4), (3, 2, 1, 0)),
        (1, (6, 7), (1, 0)),
        (2, (9, 10), (1, 0)),
        (3, (12, 13), (1, 0)),
        (4, (15, 16), (1, 0)),
        (5, (18, 19), (1, 0)),
        (6, (21, 22, 23), (2, 1, 0)),
    )
]


def iso_stamp_bytes(epochs: npt.NDArray[np.float64]) -> list[bytes]:
    """JSON string literals (quotes included) of :func:`iso_utc` for many instants, built
    as one array of digits (a civil date from days since the epoch, Hinnant's algorithm)."""
    millis = np.floor(np.asarray(epochs, np.float64) * 1000.0).astype(np.int64)
    days, ms = np.divmod(millis, 86_400_000)
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    if len(year) and (year.min() < 0 or year.max() > 9999):
        raise ValueError("a time stamp outside the years 0000-9999")
    fields = (year, month, day, ms // 3_600_000, ms // 60_000 % 60, ms // 1000 % 60, ms % 1000)
    out = np.tile(_STAMP, (len(millis), 1))
    for field, digits in _DIGITS:
        values = fields[field]
        for column, divisor in digits:
            out[:, column] += (values // divisor % 10).astype(np.uint8)
    stamps: list[bytes] = out.view("S26").ravel().tolist()
    return stamps


def until_stopped(speed: str | None) -> str:
    """A run's duration that outlasts any test that stops it (a Locust test stops its
    fleet), within what ``simulate run`` takes: at most a year of real time at ``speed``."""
    try:
        factor = parse_speed(speed or "1")
    except ValueError:
        return "3650d"  # the run names the bad speed itself
    days = 3650 if factor is None else max(1, min(3650, int(360 * factor)))
    return f"{days}d"
