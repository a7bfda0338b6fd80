"""Schedules: when each device of one type sends one kind of message and what it sends,
and the batch of messages one tick fires across all of them.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator, Sequence

import numpy as np

from simulator.arrays import FloatArray, IntArray
from simulator.engine.payload import PayloadEncoder
from simulator.fleet.build import Fleet
from simulator.fleet.imperfections import DeviceFlaws
from simulator.fleet.profiles import DeviceProfile, MessageSpec
from simulator.fleet.topics import device_topic
from simulator.models.base import Batch, Modulator, SignalModel
from simulator.models.episodes import RunContext

#: A schedule's readings of one tick: the fields as Python columns, and per message which
#: fields it leaves out (None: every message has every field).
Readings = tuple[list[list[object]], list[list[bool] | None] | None]


class Schedule:
    """When each device of one type sends one kind of message, and what it sends."""

    def __init__(
        self,
        fleet: Fleet,
        profile: DeviceProfile,
        spec: MessageSpec,
        devices: IntArray,
        start: float,
        utc_offsets: FloatArray,
        seed: np.random.SeedSequence,
        topic_template: str,
        flaws: DeviceFlaws,
    ) -> None:
        self.fleet = fleet
        self.profile = profile
        self.spec = spec
        self.devices = devices
        self.type_code = fleet.devices.type_names.index(profile.device_type)
        phase_seed, value_seed, model_seed = seed.spawn(3)
        self.rng = np.random.default_rng(value_seed)
        phase_rng = np.random.default_rng(phase_seed)
        interval = spec.interval
        if spec.daily_at is None:
            # Devices spread their reports evenly over the interval.
            self.base = start + phase_rng.uniform(0.0, interval, len(devices))
        else:
            # Daily messages at the farm's local time of day, a few minutes apart per device.
            offset = utc_offsets[fleet.devices.farm[devices]]
            local_day = np.floor((start + offset) / 86400.0) * 86400.0
            first = local_day - offset + spec.daily_at + phase_rng.uniform(0.0, 300.0, len(devices))
            self.base = np.where(first < start, first + 86400.0, first)
        self.jitter_width = spec.jitter * interval
        self.next_due = self.base + self._jitter(len(devices))
        self.active = np.zeros(len(devices), np.bool_)
        model_rng = np.random.default_rng(model_seed)
        self.models: list[SignalModel] = []
        for field in spec.fields:
            model = field.instantiate()
            model.bind(fleet, devices, model_rng)
            self.models.append(model)
        self.encoder = PayloadEncoder(fleet, profile, spec.kind, spec.fields)
        self.flaws = flaws
        self.topics = self._topics(topic_template)
        self._position = {int(d): i for i, d in enumerate(devices)}

    def _topics(self, template: str) -> list[str]:
        device_type, kind = self.profile.device_type, self.spec.kind
        return [
            device_topic(template, self.fleet, device, device_type, kind)
            for device in self.devices.tolist()
        ]

    def _jitter(self, count: int) -> FloatArray:
        if not self.jitter_width:
            return np.zeros(count)
        return self.rng.uniform(-self.jitter_width, self.jitter_width, count)

    def activate(self, devices: Sequence[int], now: float) -> None:
        """Start the schedules of ``devices`` (fleet indices), skipping what was due before now."""
        idx = np.array([self._position[d] for d in devices if d in self._position], np.int64)
        if not len(idx):
            return
        behind = np.ceil(np.maximum(now - self.base[idx], 0.0) / self.spec.interval)
        self.base[idx] += behind * self.spec.interval
        self.next_due[idx] = np.maximum(self.base[idx] + self._jitter(len(idx)), now)
        self.active[idx] = True

    def earliest(self) -> float:
        if not self.active.any():
            return float("inf")
        return float(self.next_due[self.active].min())

    def fire(self, horizon: float) -> tuple[IntArray, FloatArray] | None:
        """Take every message due before ``horizon``: (schedule positions, due instants).

        A device may be due several times before a far horizon (as fast as possible); all
        its occurrences are taken at once from a grid of upcoming instants, so a tick is
        a few large numpy batches rather than many small ones.
        """
        idx = np.flatnonzero(self.active & (self.next_due < horizon))
        if not len(idx):
            return None
        interval = self.spec.interval
        base = self.base[idx]
        # Occurrence k of device i is due at base + k * interval + jitter; column 0 is the
        # instant already drawn. The last column always lies beyond the horizon.
        columns = max(int((horizon - base.min()) // interval), 0) + 3
        grid = base[:, None] + interval * np.arange(columns)[None, :]
        if columns > 1:
            grid[:, 1:] += self._jitter(len(idx) * (columns - 1)).reshape(len(idx), columns - 1)
        grid[:, 0] = self.next_due[idx]
        taken = grid < horizon  # a prefix of each row: jitter stays under half an interval
        counts = taken.sum(axis=1)
        rows = np.arange(len(idx))
        self.base[idx] = base + counts * interval
        self.next_due[idx] = grid[rows, counts]
        return np.repeat(idx, counts), grid[taken]

    def readings(
        self,
        idx: IntArray,
        due: FloatArray,
        utc_offsets: FloatArray,
        modulators: Sequence[Modulator],
        context: RunContext | None,
    ) -> Generator[None, None, Readings]:
        """Every field's values for the messages ``idx`` due at ``due``, as Python columns,
        and which fields each message leaves out (None: none does).

        A generator that stops after each field, its result the value of its
        ``StopIteration``: a real-time engine lets its
        event loop run between two fields, so what waits meanwhile (acknowledgements,
        timers) is held up by one field's computation, not a whole schedule's."""
        devices = self.devices[idx]
        batch = Batch(
            self.fleet,
            devices,
            due,
            self.spec.interval,
            self.rng,
            modulators,
            farm_utc_offset=utc_offsets,
            context=context,
        )
        for index, (field, model) in enumerate(zip(self.spec.fields, self.models, strict=True)):
            values = model.generate(batch)
            if values.dtype.kind == "f":
                values = batch.modulate(field.name, np.asarray(values, np.float64))
                if model.sensor:
                    values = self.flaws.apply(field.name, index, devices, due, values, self.rng)
            batch.values[field.name] = values
            yield
        columns = self.encoder.columns([batch.values[f.name] for f in self.spec.fields])
        missing = self.flaws.missing(len(idx), len(self.spec.fields), self.rng)
        if missing is None:
            return columns, None
        # Only rows that really leave a field out take the slower encoding path.
        rows: list[list[bool]] = missing.tolist()
        gaps: list[bool] = np.asarray(missing.any(axis=1), np.bool_).tolist()
        return columns, [row if gap else None for row, gap in zip(rows, gaps, strict=True)]


class TickBatch:
    """The messages one tick fires, all schedules together: in batch order (schedule by
    schedule) with ``order``, the permutation that puts them in time order (stable: ties
    keep schedule order)."""

    def __init__(self, fired: list[tuple[Schedule, IntArray, FloatArray]]) -> None:
        self.fired = fired
        self.bounds = np.cumsum([0, *(len(idx) for _, idx, _ in fired)])
        self.due = np.concatenate([due for _, _, due in fired])
        self.devices = np.concatenate([s.devices[idx] for s, idx, _ in fired])
        self.order = np.argsort(self.due, kind="stable")

    def slices(self) -> list[slice]:
        """Each schedule's part of the batch."""
        return [slice(a, b) for a, b in itertools.pairwise(self.bounds.tolist())]

    def parts(self) -> list[tuple[Schedule, slice]]:
        return [(s, part) for (s, _, _), part in zip(self.fired, self.slices(), strict=True)]

    def labels(self) -> tuple[list[str], list[int], list[str]]:
        """Who each message is, in batch order: its kind, device type code and topic."""
        kinds: list[str] = []
        type_codes: list[int] = []
        topics: list[str] = []
        for schedule, idx, _ in self.fired:
            kinds.extend([schedule.spec.kind] * len(idx))
            type_codes.extend([schedule.type_code] * len(idx))
            schedule_topics = schedule.topics
            topics.extend([schedule_topics[p] for p in idx.tolist()])
        return kinds, type_codes, topics
