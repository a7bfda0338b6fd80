"""Parsing durations, speeds and instants as people type them."""

from __future__ import annotations

import pytest

from simulator.units import format_duration, parse_duration, parse_instant, parse_speed


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
