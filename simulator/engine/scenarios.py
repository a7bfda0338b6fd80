"""Scenarios: events that change what a fleet sends, when and where (``--scenario FILE``).

A scenario file names events; each has a ``type``, a start (``at = "2d"`` after the
run's start, or an ISO 8601 instant), a ``duration``, a target (``where``) and its own
strength parameters::

    name = "Heatwave"
    [[events]]
    type = "heatwave"
    at = "1d"
    duration = "4d"
    where = { share = 0.5 }      # or farms = [...], sites = [...], rooms = [...]
    outdoor_c = 36.0

Event types are classes registered by name, like signal models. They act in one of
three ways: as modulators of readings (outbreak, heatwave, ventilation failure), as
windows in which devices are offline and buffer (network outage, power loss, reconnect
storm), on payloads (bad payloads), or on the network between the simulator and its
target through a fault proxy (network fault: cut, latency, throttle, blackhole).
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from simulator.arrays import FloatArray, IntArray, hash_uniform
from simulator.engine.payload import MALFORMATIONS
from simulator.fleet.build import Fleet
from simulator.models.base import Batch
from simulator.models.episodes import acute_curve, chronic_curve
from simulator.tomlfile import Table
from simulator.transports.faultproxy import FAULTS
from simulator.units import format_duration, iso_utc, parse_duration, parse_instant

BoolArray = npt.NDArray[np.bool_]
UNITS = ("farm", "site", "room")
_TWO_PI = 2.0 * np.pi


@dataclass
class Target:
    """The devices (and rooms) an event reaches, as fleet-sized masks."""

    devices: BoolArray
    rooms: BoolArray


class Event(ABC):
    """Base of every event type; subclasses are registered with :func:`event_type`."""

    name: ClassVar[str]
    params: ClassVar[frozenset[str]] = frozenset()
    #: the unit a ``share`` picks by default.
    unit: ClassVar[str] = "farm"
    default_duration: ClassVar[str] = "1h"

    def __init__(self, table: Table, index: int) -> None:
        table.check_keys(set(self.params) | {"type", "at", "duration", "where", "description"})
        self.table = table
        self.index = index
        self.at_text = table.string("at", "0s")
        self.duration = table.duration("duration", self.default_duration)
        self.where = table.table("where", required=False)
        self.where.check_keys({"farms", "sites", "rooms", "share", "unit"})
        self.share = self.where.number("share", 1.0, min=0.0, max=1.0)
        unit = self.where.string("unit", self.unit)
        if unit not in UNITS:
            raise self.where.error("unit", f'expected one of {", ".join(UNITS)}, got "{unit}"')
        self.share_unit = unit
        self.start = 0.0
        self.end = 0.0
        self.target = Target(np.zeros(0, np.bool_), np.zeros(0, np.bool_))

    def bind(self, fleet: Fleet, run_start: float, seed: int) -> None:
        """Resolve when and where against the run's fleet and start."""
        self.start = _instant(self.table, self.at_text, run_start)
        self.end = self.start + self.duration
        self.target = _resolve_where(
            self.where,
            fleet,
            self.share,
            self.share_unit,
            np.random.default_rng([seed, 7, self.index]),
        )

    def active(self, times: FloatArray) -> BoolArray:
        return np.asarray((times >= self.start) & (times < self.end), np.bool_)

    def offline(self, devices: IntArray, times: FloatArray) -> BoolArray | None:
        """Which of these messages fall while their device is offline (None: no effect)."""
        return None


def _in_window(event: Event, devices: IntArray, times: FloatArray) -> BoolArray:
    """Messages of the event's devices that fall inside its time window."""
    return np.asarray(event.target.devices[devices] & event.active(times), np.bool_)


class OfflineWindow(Event):
    """An event during which its devices are offline: they buffer, then backfill."""

    def offline(self, devices: IntArray, times: FloatArray) -> BoolArray | None:
        return _in_window(self, devices, times)


_EVENTS: dict[str, type[Event]] = {}


def event_type(name: str) -> Callable[[type[Event]], type[Event]]:
    def decorate(cls: type[Event]) -> type[Event]:
        cls.name = name
        _EVENTS[name] = cls
        return cls

    return decorate


def _instant(table: Table, text: str, run_start: float) -> float:
    try:
        return run_start + parse_duration(text)
    except ValueError:
        pass
    try:
        return parse_instant(text)
    except ValueError:
        raise table.error(
            "at", f'expected an offset such as "2d" or an ISO 8601 instant, got "{text}"'
        ) from None


def _resolve_where(
    where: Table, fleet: Fleet, share: float, unit: str, rng: np.random.Generator
) -> Target:
    devices = fleet.devices
    rooms_table = fleet.rooms
    farm_ids = {farm.farm_id: farm.index for farm in fleet.farms}
    site_ids = {site: i for i, site in enumerate(fleet.site_ids)}
    room_ids = {room: i for i, room in enumerate(rooms_table.ids)}
    device_mask = np.ones(devices.count, np.bool_)
    room_mask = np.ones(rooms_table.count, np.bool_)
    for key, index, device_key, room_key in (
        ("farms", farm_ids, devices.farm, rooms_table.farm),
        ("sites", site_ids, devices.site, rooms_table.site),
        ("rooms", room_ids, devices.room, np.arange(rooms_table.count)),
    ):
        if key in where:
            wanted = []
            for name in where.string_list(key):
                if name not in index:
                    raise where.error(key, f'"{name}" is not in this fleet (see `simulate fleet`)')
                wanted.append(index[name])
            device_mask &= np.isin(device_key, wanted)
            room_mask &= np.isin(room_key, wanted)
    if share < 1.0:
        all_rooms = np.arange(rooms_table.count)
        choices: dict[str, tuple[IntArray, IntArray, int]] = {
            "farm": (
                devices.farm.astype(np.int64),
                rooms_table.farm.astype(np.int64),
                len(fleet.farms),
            ),
            "site": (
                devices.site.astype(np.int64),
                rooms_table.site.astype(np.int64),
                len(fleet.site_ids),
            ),
            "room": (devices.room.astype(np.int64), all_rooms, rooms_table.count),
        }
        units_of_devices, units_of_rooms, count = choices[unit]
        chosen = rng.random(count) < share
        device_mask &= np.where(
            units_of_devices >= 0, chosen[np.maximum(units_of_devices, 0)], unit != "room"
        )
        room_mask &= chosen[units_of_rooms]
    return Target(device_mask, room_mask)


class ModulatingEvent(Event):
    """An event that changes readings (it is a :class:`~simulator.models.Modulator`)."""

    def modulate(self, name: str, batch: Batch, values: FloatArray) -> FloatArray:
        return values


@event_type("outbreak")
class OutbreakEvent(ModulatingEvent):
    """A respiratory outbreak in the chosen rooms: ``kind`` acute or chronic, ``peak`` times
    the healthy cough rate, reaching each monitor with ``reach`` and a lag up to ``max_lag``."""

    params = frozenset({"kind", "peak", "reach", "max_lag"})
    unit = "room"
    default_duration = "10d"

    def __init__(self, table: Table, index: int) -> None:
        super().__init__(table, index)
        self.kind = table.string("kind", "acute")
        if self.kind not in ("acute", "chronic"):
            raise table.error("kind", f'expected "acute" or "chronic", got "{self.kind}"')
        self.peak = table.number("peak", 6.0 if self.kind == "acute" else 3.0, min=1.0, max=50.0)
        self.reach = table.number("reach", 0.9, min=0.0, max=1.0)
        self.max_lag = table.duration("max_lag", "2d", positive=False)

    def modulate(self, name: str, batch: Batch, values: FloatArray) -> FloatArray:
        if name != "outbreak":
            return values
        devices = batch.devices
        hit = self.target.devices[devices]
        hit &= hash_uniform(self.index, devices, 1) < self.reach
        if not hit.any():
            return values
        lag = hash_uniform(self.index, devices, 2) * self.max_lag
        days = (batch.times - self.start - lag) / 86400.0
        count = len(batch)
        if self.kind == "acute":
            length = self.duration / 86400.0
            curve = acute_curve(
                days,
                np.full(count, self.peak),
                np.full(count, 0.4 * length),
                np.full(count, length),
            )
        else:
            length = self.duration / 86400.0
            curve = chronic_curve(
                days,
                np.full(count, self.peak),
                np.full(count, 0.3 * length),
                np.full(count, 0.6 * length),
            )
        return np.asarray(np.where(hit & batch.occupied(), np.maximum(values, curve), values))


@event_type("heatwave")
class Heatwave(ModulatingEvent):
    """Outdoors climbs to about ``outdoor_c`` in the afternoons for ``duration``; stocked barns
    follow at a few degrees above outdoors."""

    params = frozenset({"outdoor_c", "ramp"})
    default_duration = "4d"

    def __init__(self, table: Table, index: int) -> None:
        super().__init__(table, index)
        self.outdoor_c = table.number("outdoor_c", 35.0, min=-50.0, max=60.0)
        self.ramp = table.duration("ramp", "12h")

    def modulate(self, name: str, batch: Batch, values: FloatArray) -> FloatArray:
        if name != "outdoor_temperature":
            return values
        times = batch.times
        envelope = np.clip(np.minimum(times - self.start, self.end - times) / self.ramp, 0.0, 1.0)
        envelope = np.where(self.target.devices[batch.devices], envelope, 0.0)
        target = self.outdoor_c - 5.0 + 5.0 * np.cos(_TWO_PI * (batch.local_hour() - 15.0) / 24.0)
        return np.asarray(values + envelope * np.maximum(target - values, 0.0))


@event_type("ventilation_failure")
class VentilationFailure(ModulatingEvent):
    """Fans stop in the chosen rooms: temperature climbs toward ``critical_c`` with time
    constant ``time_constant``, CO2 rises by ``co2_ppm_per_min``; with ``power_loss`` the
    room's devices also go offline and buffer until power returns."""

    params = frozenset({"critical_c", "time_constant", "co2_ppm_per_min", "power_loss"})
    unit = "room"
    default_duration = "2h"

    def __init__(self, table: Table, index: int) -> None:
        super().__init__(table, index)
        self.critical_c = table.number("critical_c", 40.0, min=0.0, max=80.0)
        self.tau = table.duration("time_constant", "20m")
        self.co2_rate = table.number("co2_ppm_per_min", 500.0, min=0.0)
        power_loss = table.raw("power_loss", False)
        if not isinstance(power_loss, bool):
            raise table.error("power_loss", "expected true or false")
        self.power_loss = power_loss

    def _since(self, batch: Batch) -> tuple[BoolArray, FloatArray]:
        return _in_window(self, batch.devices, batch.times), np.maximum(
            batch.times - self.start, 0.0
        )

    def modulate(self, name: str, batch: Batch, values: FloatArray) -> FloatArray:
        if name not in ("room_temperature", "ventilation", "co2"):
            return values
        hit, since = self._since(batch)
        if not hit.any():
            return values
        if name == "room_temperature":
            heated = values + (self.critical_c - values) * (1.0 - np.exp(-since / self.tau))
            return np.asarray(np.where(hit, heated, values))
        if name == "ventilation":
            return np.asarray(np.where(hit, 0.0, values))
        raised = np.minimum(values + self.co2_rate * since / 60.0, 10000.0)
        return np.asarray(np.where(hit, raised, values))

    def offline(self, devices: IntArray, times: FloatArray) -> BoolArray | None:
        if not self.power_loss:
            return None
        return _in_window(self, devices, times)


@event_type("network_outage")
class NetworkOutage(OfflineWindow):
    """The chosen sites lose their network: every device there is offline for ``duration``,
    buffers what it measures (bounded), and backfills faster than live when it returns."""

    unit = "site"
    default_duration = "2h"


@event_type("reconnect_storm")
class ReconnectStorm(OfflineWindow):
    """A share of the fleet's connections drop at once and come back together after
    ``duration``: the thundering herd a broker restart causes."""

    unit = "site"
    default_duration = "10s"


@event_type("bad_payloads")
class BadPayloads(Event):
    """A share ``rate`` of messages is malformed (``kinds`` of: truncated, not_json,
    wrong_types, missing_envelope, empty, oversized) to test the backend's validation."""

    params = frozenset({"rate", "kinds"})
    default_duration = "3650d"

    def __init__(self, table: Table, index: int) -> None:
        super().__init__(table, index)
        self.rate = table.number("rate", 0.01, min=0.0, max=1.0)
        self.kinds = tuple(table.string_list("kinds", list(MALFORMATIONS)))
        for kind in self.kinds:
            if kind not in MALFORMATIONS:
                raise table.error("kinds", f'"{kind}" is not one of {", ".join(MALFORMATIONS)}')

    def choose(
        self, devices: IntArray, times: FloatArray, rng: np.random.Generator
    ) -> list[str | None]:
        """For each message, the malformation it gets, or None."""
        hit = self.target.devices[devices] & self.active(times)
        hit &= rng.random(len(devices)) < self.rate
        picks = rng.integers(0, len(self.kinds), len(devices)).tolist()
        return [self.kinds[p] if h else None for h, p in zip(hit.tolist(), picks, strict=True)]


@event_type("network_fault")
class NetworkFault(Event):
    """A fault of the network between the simulator and its target, played by a TCP fault
    proxy the run puts in front of the target (see faultproxy.py): ``fault`` is one of
    cut, latency (``latency_ms``), throttle (``bandwidth`` bytes/s), blackhole, refuse.
    It reaches every connection: ``where`` does not apply."""

    params = frozenset({"fault", "latency_ms", "bandwidth"})
    default_duration = "1m"

    def __init__(self, table: Table, index: int) -> None:
        super().__init__(table, index)
        if "where" in table:
            raise table.error("where", "a network fault reaches every connection of the run")
        self.fault = table.string("fault")
        if self.fault not in FAULTS:
            raise table.error("fault", f'expected one of {", ".join(FAULTS)}, got "{self.fault}"')
        self.latency_ms = table.number("latency_ms", 500.0, min=0.0, max=600_000.0)
        self.bandwidth = table.number("bandwidth", 10_000.0, min=1.0)


@dataclass
class Scenario:
    """A loaded scenario: named events, bound to a fleet and a run at engine start."""

    name: str
    source: str
    description: str
    events: list[Event] = field(default_factory=list)

    def bind(self, fleet: Fleet, run_start: float, seed: int) -> None:
        for event in self.events:
            event.bind(fleet, run_start, seed)

    def check_window(self, run_start: float, run_end: float) -> None:
        """Refuse an event that falls wholly outside the run: it would silently do nothing."""
        for event in self.events:
            start = _instant(event.table, event.at_text, run_start)
            if start >= run_end or start + event.duration <= run_start:
                raise event.table.error(
                    "at",
                    f"the {event.name} event ({iso_utc(start)} for "
                    f"{format_duration(event.duration)}) falls outside the run "
                    f"({iso_utc(run_start)} to {iso_utc(run_end)}): move it, or change "
                    "--start or --duration",
                )

    @property
    def network_faults(self) -> list[NetworkFault]:
        return [e for e in self.events if isinstance(e, NetworkFault)]

    @property
    def modulators(self) -> list[ModulatingEvent]:
        return [e for e in self.events if isinstance(e, ModulatingEvent)]

    def offline(self, devices: IntArray, times: FloatArray) -> BoolArray | None:
        """Which messages fall in a window where their device is offline, or None."""
        mask: BoolArray | None = None
        for event in self.events:
            hit = event.offline(devices, times)
            if hit is not None:
                mask = hit if mask is None else mask | hit
        return mask

    def malformations(
        self, devices: IntArray, times: FloatArray, rng: np.random.Generator
    ) -> list[str | None] | None:
        choices: list[str | None] | None = None
        for event in self.events:
            if isinstance(event, BadPayloads):
                picks = event.choose(devices, times, rng)
                choices = (
                    picks
                    if choices is None
                    else [a or b for a, b in zip(choices, picks, strict=True)]
                )
        return choices


def load_scenario(file: Path) -> Scenario:
    """Load a scenario file; errors name the file, the event and the key."""
    root = Table.load(file)
    root.check_keys({"name", "description", "events"})
    raw_events = root.raw("events")
    if not isinstance(raw_events, list) or not all(isinstance(e, dict) for e in raw_events):
        raise root.error("events", "expected one or more [[events]] tables")
    if not raw_events:
        raise root.error("events", "expected one or more [[events]] tables")
    events: list[Event] = []
    for index, raw in enumerate(raw_events):
        table = Table(raw, root.source, f"events[{index}]")
        kind = table.string("type")
        if kind not in _EVENTS:
            known = ", ".join(sorted(_EVENTS))
            raise table.error("type", f'unknown event type "{kind}" (known: {known})')
        events.append(_EVENTS[kind](table, index))
    description = root.raw("description", "")
    if not isinstance(description, str):
        raise root.error("description", "expected a string")
    return Scenario(
        name=root.string("name", file.stem),
        source=str(file),
        description=description,
        events=events,
    )
