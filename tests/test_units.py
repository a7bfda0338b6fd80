"""Parsing durations, speeds and instants as people type them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from simulator.units import (
    format_duration,
    iso_stamp_bytes,
    parse_duration,
    parse_instant,
    parse_speed,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("1h30m", 5400),
        ("365d", 365 * 86400),
        ("30", 30),
        ("2w", 14 * 86400),
        ("250ms", 0.25),
        (" 8h ", 28800),
    ],
)
def test_durations_parse_to_seconds(text: str, seconds: float) -> None:
    """Every documented duration form gives the right number of seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["banana", "", "5x", "m5", "1h banana", "-5m"])
def test_bad_durations_are_refused_with_an_example(text: str) -> None:
    """A malformed duration raises ValueError whose message shows what was expected."""
    with pytest.raises(ValueError, match="expected a duration such as"):
        parse_duration(text)


def test_speed_accepts_factors_and_max_only() -> None:
    """Speed is a positive factor or "max"; zero, negatives and words are refused."""
    assert parse_speed("60") == 60.0
    assert parse_speed("max") is None
    assert parse_speed("2.5x") == 2.5
    for bad in ("0", "-1", "fast", "inf", "nan"):
        with pytest.raises(ValueError, match='number > 0 or "max"'):
            parse_speed(bad)


def test_instants_are_utc_unless_they_say_otherwise() -> None:
    """Dates and naive times are UTC; an explicit offset is honoured."""
    assert parse_instant("2026-01-01") == 1767225600.0
    assert parse_instant("2026-01-01T01:00:00+01:00") == 1767225600.0
    assert parse_instant("2026-01-01T00:00:00Z") == 1767225600.0
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_instant("yesterday")


def test_durations_format_back_to_short_text() -> None:
    """format_duration is the short human form used by the live view."""
    assert format_duration(5400) == "1h30m"
    assert format_duration(0.25) == "250ms"
    assert format_duration(86400 * 2 + 1) == "2d1s"


def test_bulk_time_stamps_match_one_at_a_time_formatting() -> None:
    """The vectorised stamps of a batch are byte for byte the calendar's, to the
    millisecond below each instant: random instants from 1906 to 2160, leap days, century
    years, the last millisecond of a day and instants before 1970."""
    rng = np.random.default_rng(7)
    epochs = np.concatenate(
        [
            rng.uniform(-2e9, 6e9, 20_000),
            [0.0, 0.0009, -0.0005, 951_782_400.0, 951_868_799.999, 4_102_444_799.9999],
            [1_709_164_800.5, 1_767_225_600.0, -2_208_988_800.0],
        ]
    )
    epoch_zero = datetime(1970, 1, 1, tzinfo=UTC)
    expected = [
        b'"%sZ"'
        % (epoch_zero + timedelta(milliseconds=int(millis)))
        .isoformat(timespec="milliseconds")[:-6]
        .encode()
        for millis in np.floor(epochs * 1000.0)
    ]
    assert iso_stamp_bytes(epochs) == expected
    assert iso_stamp_bytes(np.zeros(0)) == []
