"""Reading TOML files into typed values, with errors that name the file and key.

Every loader (farms, device profiles, later scenarios and dashboard maps) reads through
:class:`Table`, so a wrong value is reported the same way everywhere::

    farms/eu.toml: layout.sites: expected an integer or [min, max], got "two"

Files are parsed as data by :mod:`tomllib`; nothing in them is ever evaluated.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from simulator.errors import ConfigError
from simulator.units import parse_duration

T = TypeVar("T")

_MISSING = object()


def describe(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


class Table:
    """A TOML table that knows where it came from."""

    def __init__(self, data: dict[str, Any], source: str, path: str = "") -> None:
        self._data = data
        self.source = source
        self.path = path

    @classmethod
    def load(cls, file: Path) -> Table:
        """Parse ``file``; a syntax error becomes a :class:`ConfigError` naming it."""
        try:
            with file.open("rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(str(file), "file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(file), f"not valid TOML ({exc})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(str(file), f"cannot be read ({exc})") from None
        except RecursionError:
            raise ConfigError(str(file), "not valid TOML (nested too deeply)") from None
        return cls(data, str(file))

    def where(self, key: str | None = None) -> str:
        """The place of ``key`` in this table, as shown in error messages."""
        dotted = ".".join(part for part in (self.path, key) if part)
        return f"{self.source}: {dotted}" if dotted else self.source

    def error(self, key: str | None, problem: str) -> ConfigError:
        return ConfigError(self.where(key), problem)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        """The keys, in file order."""
        return iter(self._data)

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        if key in self._data:
            return self._data[key]
        if default is _MISSING:
            raise self.error(key, "missing (required)")
        return default

    def check_keys(self, allowed: set[str]) -> None:
        """Reject unknown keys, which are almost always typos."""
        for key in self._data:
            if key not in allowed:
                expected = ", ".join(sorted(allowed))
                raise self.error(key, f"unknown key (expected one of: {expected})")

    def table(self, key: str, *, required: bool = True) -> Table:
        value = self.raw(key, _MISSING if required else {})
        if not isinstance(value, dict):
            raise self.error(key, f"expected a table, got {describe(value)}")
        return Table(value, self.source, ".".join(p for p in (self.path, key) if p))

    def string(self, key: str, default: str | None = None) -> str:
        value = self.raw(key, _MISSING if default is None else default)
        if not isinstance(value, str) or not value:
            raise self.error(key, f"expected a non-empty string, got {describe(value)}")
        return value

    def number(
        self,
        key: str,
        default: float | None = None,
        *,
        min: float | None = None,
        max: float | None = None,
    ) -> float:
        value = self.raw(key, _MISSING if default is None else default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected a number, got {describe(value)}")
        try:
            number = float(value)
        except OverflowError:
            raise self.error(key, "is too large a number") from None
        return self._bounded(key, number, min, max)

    def integer(
        self,
        key: str,
        default: int | None = None,
        *,
        min: int | None = None,
        max: int | None = None,
    ) -> int:
        value = self.raw(key, _MISSING if default is None else default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, got {describe(value)}")
        return int(self._bounded(key, value, min, max))

    def int_range(
        self,
        key: str,
        default: tuple[int, int] | None = None,
        *,
        min: int = 0,
        max: int = 1_000_000,
    ) -> tuple[int, int]:
        """An integer or an inclusive ``[low, high]`` range, within ``[min, max]``."""
        value = self.raw(key, _MISSING if default is None else list(default))
        expected = "an integer or [min, max] of integers"
        if isinstance(value, int) and not isinstance(value, bool):
            low = high = value
        elif (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            low, high = value
        else:
            raise self.error(key, f"expected {expected}, got {describe(value)}")
        if low < min:
            raise self.error(key, f"{low} is not >= {min}")
        if high < low:
            raise self.error(key, f"[{low}, {high}] has min > max")
        if high > max:
            raise self.error(key, f"{high} is not <= {max}")
        return int(low), int(high)

    def duration(self, key: str, default: str | None = None, *, positive: bool = True) -> float:
        """A duration such as ``"15m"``, ``"1h30m"`` or a number of seconds."""
        value = self.raw(key, _MISSING if default is None else default)
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        elif isinstance(value, str):
            try:
                seconds = parse_duration(value)
            except ValueError as exc:
                raise self.error(key, str(exc)) from None
        else:
            raise self.error(key, f'expected a duration such as "15m", got {describe(value)}')
        if positive and seconds <= 0:
            raise self.error(key, f"{describe(value)} is not a positive duration")
        return seconds

    def string_list(self, key: str, default: list[str] | None = None) -> list[str]:
        value = self.raw(key, _MISSING if default is None else default)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(key, f"expected a list of strings, got {describe(value)}")
        return list(value)

    def number_list(self, key: str, default: list[float] | None = None) -> list[float]:
        value = self.raw(key, _MISSING if default is None else default)
        if not isinstance(value, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        ):
            raise self.error(key, f"expected a list of numbers, got {describe(value)}")
        if not all(math.isfinite(v) for v in value):
            raise self.error(key, "expected finite numbers (no nan or inf)")
        return [float(v) for v in value]

    def _bounded(self, key: str, value: float, low: float | None, high: float | None) -> float:
        if not math.isfinite(value):
            raise self.error(key, f"expected a finite number, got {value}")
        if low is not None and value < low:
            raise self.error(key, f"{value:g} is not >= {low:g}")
        if high is not None and value > high:
            raise self.error(key, f"{value:g} is not <= {high:g}")
        return value
