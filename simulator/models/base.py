"""Signal models: the code behind a profile's fields, registered by name.

A profile field says ``temp_c = { model = "room_temperature", noise_sd = 0.1 }``. The
model's class parses and validates those parameters when the profile loads, is bound
once per run to the devices of its profile (per-device state lives in numpy arrays
sized to the fleet), and then computes a whole batch of readings per call:
one numpy expression for every device due in a tick, never one Python call per reading.

Events modulate readings through :class:`Modulator` objects: a model passes its latent
inputs (``cough_rate``) and the engine passes every finished field through
:meth:`Batch.modulate`, so an outbreak or a heatwave can scale or shift any of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from simulator.arrays import SECONDS_PER_DAY, FloatArray, IntArray, Values
from simulator.errors import ConfigError
from simulator.tomlfile import Table

if TYPE_CHECKING:
    from simulator.fleet.tables import Fleet


class Modulator(Protocol):
    """Something that changes readings while it is active (an event of a scenario)."""

    def modulate(self, name: str, batch: Batch, values: FloatArray) -> FloatArray:
        """Return ``values`` (one per message of ``batch``) as changed by this modulator."""
        ...


class _Outbreaks(Protocol):
    def multiplier(self, batch: Batch) -> FloatArray: ...


class _Weather(Protocol):
    def outdoor(self, batch: Batch) -> FloatArray: ...


class RunContextView(Protocol):
    """What a signal model reads of the run's outbreaks and weather
    (:class:`.episodes.RunContext` is the one the engine makes)."""

    @property
    def outbreaks(self) -> _Outbreaks: ...

    @property
    def weather(self) -> _Weather: ...


@dataclass
class Batch:
    """The readings of one message kind for all the devices due in one tick."""

    fleet: Fleet
    devices: IntArray  # fleet device indices, one per message
    times: FloatArray  # intended simulated send time of each message (epoch seconds)
    interval: float  # seconds between two messages of this kind of one device
    rng: np.random.Generator
    modulators: Sequence[Modulator] = ()
    #: UTC offset (seconds) of every farm of the fleet, for local time of day.
    farm_utc_offset: FloatArray | None = None
    #: the run's outbreaks and weather (None: a healthy fleet in mild weather).
    context: RunContextView | None = None
    #: fields computed so far for this batch, in profile order.
    values: dict[str, Values] = field(default_factory=dict)
    _cache: dict[str, FloatArray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.devices)

    def modulate(self, name: str, values: FloatArray) -> FloatArray:
        for modulator in self.modulators:
            values = modulator.modulate(name, self, values)
        return values

    def shifted(self, seconds: float) -> Batch:
        """The same messages ``seconds`` earlier (for smoothing over past days)."""
        return replace(self, times=self.times - seconds, values={}, _cache={})

    def cached(self, key: str, compute: Callable[[], FloatArray]) -> FloatArray:
        """Share a derived array (local hour, room temperature) between fields."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    # Derived views shared by many models --------------------------------------------

    @property
    def rooms(self) -> IntArray:
        return self.fleet.devices.room[self.devices].astype(np.int64)

    @property
    def farms(self) -> IntArray:
        return self.fleet.devices.farm[self.devices].astype(np.int64)

    def local_hour(self) -> FloatArray:
        """Hour of the day (0–24) at each device's farm, for daily cycles."""

        def compute() -> FloatArray:
            if self.farm_utc_offset is None:
                return np.asarray((self.times % SECONDS_PER_DAY) / 3600.0, np.float64)
            offset = self.farm_utc_offset[self.farms]
            return np.asarray(((self.times + offset) % SECONDS_PER_DAY) / 3600.0, np.float64)

        return self.cached("local_hour", compute)

    def batch_age_days(self) -> FloatArray:
        """Days since the room's current batch was placed (NaN for devices without a room)."""
        return self.cached("batch_age", lambda: self.fleet.rooms.age_days(self.rooms, self.times))

    def occupied(self) -> npt.NDArray[np.bool_]:
        """Whether each device's room holds pigs right now."""
        age = self.batch_age_days()
        days = self.fleet.rooms.batch_days[np.maximum(self.rooms, 0)]
        return np.asarray((age >= 0) & (age < days), np.bool_)


class SignalModel(ABC):
    """Base of every signal model; subclasses are registered with :func:`register`."""

    name: ClassVar[str]
    #: numpy dtype kind of the output: "f" float, "i" integer, "b" bool, "U" string.
    output: ClassVar[str] = "f"
    #: a physical sensor: its readings can spike or get stuck (fleet imperfections).
    sensor: ClassVar[bool] = False
    #: parameter keys the model accepts besides ``model``, ``decimals`` and ``missing``.
    params: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, table: Table) -> None:
        table.check_keys(set(self.params) | {"model", "decimals"})
        self.table = table
        #: earlier fields of the same message this model reads (``batch.values``).
        self.depends_on: tuple[str, ...] = ()

    def bind(self, fleet: Fleet, devices: IntArray, rng: np.random.Generator) -> None:  # noqa: B027
        """Create per-device state for ``devices`` (fleet indices); stateless by default."""

    @abstractmethod
    def generate(self, batch: Batch) -> Values:
        """One value per message of ``batch``."""


_REGISTRY: dict[str, type[SignalModel]] = {}


def register(name: str) -> Callable[[type[SignalModel]], type[SignalModel]]:
    """Class decorator: make a model available to profiles under ``name``."""

    def decorate(cls: type[SignalModel]) -> type[SignalModel]:
        if name in _REGISTRY:
            raise RuntimeError(f"signal model {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def model_class(name: str, table: Table, key: str) -> type[SignalModel]:
    """The registered model called ``name``, or a :class:`ConfigError` naming the field."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(
            table.where(key), f'unknown signal model "{name}" (known: {known})'
        ) from None


def registered_models() -> list[str]:
    return sorted(_REGISTRY)


def per_device(fleet: Fleet, devices: IntArray, values: FloatArray) -> FloatArray:
    """A fleet-sized array holding ``values`` at ``devices`` (zeros elsewhere)."""
    state = np.zeros(fleet.devices.count, np.float64)
    state[devices] = values
    return state
