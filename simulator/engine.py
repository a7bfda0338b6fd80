"""The engine: turns a fleet's schedules into messages, tick by tick, open-loop.

Each (device type, message kind) has a :class:`Schedule`: arrays of the next due instant
of every device, advanced by a fixed interval plus per-message jitter. A tick takes
every message due up to now (or, as fast as possible, up to one interval ahead),
computes all their readings at once with the signal models, and hands each message to
the transport, which never blocks. When the transport or the target is slow, the
schedule does not wait: messages keep their intended instants and latency is measured
from them (no coordinated omission).

Devices connect at ``connect_rate`` per second; a device's schedule starts when its
connection is up, keeping its phase, so a fleet ramps in as a real one comes online.

The engine never imports locust and never reads the wall clock: time comes from the
:class:`~simulator.clock.Clock` it is given.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .clock import Clock, VirtualClock
from .errors import AuthError, ConnectError
from .fleet import Fleet
from .models.base import Batch, FloatArray, IntArray, Modulator, SignalModel
from .payload import PayloadEncoder, render_topic
from .profiles import DeviceProfile, MessageSpec
from .transports.base import Message, Transport
from .units import iso_stamps

log = logging.getLogger(__name__)

#: How long a real-time engine may sleep before looking again (new connections).
_MAX_SLEEP = 0.25
#: Connections attempted at once during the ramp.
_CONNECT_CONCURRENCY = 256
_RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
#: Messages per as-fast-as-possible tick to aim for.
_BATCH_MESSAGES = 4096


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
        self.encoder = PayloadEncoder(fleet, profile.device_type, spec.kind, spec.fields)
        self.topics = self._topics(topic_template)
        self._position = {int(d): i for i, d in enumerate(devices)}

    def _topics(self, template: str) -> list[str]:
        fleet = self.fleet
        table = fleet.devices
        topics = []
        for device in self.devices.tolist():
            farm = fleet.farms[int(table.farm[device])]
            site_id = fleet.site_ids[int(table.site[device])]
            topics.append(
                render_topic(
                    template,
                    farm.farm_id,
                    fleet.room_of(device) or site_id,
                    self.profile.device_type,
                    table.ids[device],
                    self.spec.kind,
                    site_id,
                )
            )
        return topics

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
    ) -> list[list[object]]:
        """Every field's values for the messages ``idx`` due at ``due``, as Python columns."""
        batch = Batch(
            self.fleet,
            self.devices[idx],
            due,
            self.spec.interval,
            self.rng,
            modulators,
            farm_utc_offset=utc_offsets,
        )
        for field, model in zip(self.spec.fields, self.models, strict=True):
            values = model.generate(batch)
            if values.dtype.kind == "f":
                values = batch.modulate(field.name, np.asarray(values, np.float64))
            batch.values[field.name] = values
        return self.encoder.columns([batch.values[f.name] for f in self.spec.fields])


@dataclass
class EngineStats:
    """What the engine itself observed (the transport's outcomes are in the metrics)."""

    ticks: int = 0
    generated: int = 0
    connected_devices: int = 0
    simulated_until: float = 0.0


class Engine:
    """Runs a fleet's schedules against a transport until the end or a stop."""

    def __init__(
        self,
        fleet: Fleet,
        profiles: Mapping[str, DeviceProfile],
        transport: Transport,
        clock: Clock,
        *,
        start: float,
        duration: float,
        seed: int,
        topic_template: str,
        device_types: Sequence[str] | None = None,
        per_gateway: bool = False,
        connect_rate: float | None = None,
        modulators: Sequence[Modulator] = (),
    ) -> None:
        self.fleet = fleet
        self.transport = transport
        self.clock = clock
        self.start = start
        self.end = start + duration
        self.modulators = list(modulators)
        self.connect_rate = connect_rate
        self.stats = EngineStats(simulated_until=start)
        self.utc_offsets = fleet.utc_offsets(start)
        selected = sorted(device_types) if device_types else sorted(profiles)
        self.owners = fleet.connection_owners(per_gateway)
        streams = np.random.SeedSequence([seed, 1]).spawn(len(selected))
        self.schedules: list[Schedule] = []
        devices_in_run: list[IntArray] = []
        for device_type, stream in zip(selected, streams, strict=True):
            profile = profiles[device_type]
            devices = fleet.devices.of_type(device_type)
            devices_in_run.append(devices)
            kind_streams = stream.spawn(len(profile.messages))
            for spec, kind_stream in zip(profile.messages.values(), kind_streams, strict=True):
                self.schedules.append(
                    Schedule(
                        fleet,
                        profile,
                        spec,
                        devices,
                        start,
                        self.utc_offsets,
                        kind_stream,
                        topic_template,
                    )
                )
        self.devices = (
            np.sort(np.concatenate(devices_in_run)) if devices_in_run else np.zeros(0, np.int64)
        )
        #: per fleet device: the next sequence number (kept across reconnects).
        self.next_seq = np.zeros(fleet.devices.count, np.int64)
        self._owner_devices: dict[int, list[int]] = {}
        for device in self.devices.tolist():
            self._owner_devices.setdefault(int(self.owners[device]), []).append(device)
        self._connected_owners: list[int] = []
        #: look-ahead of an as-fast-as-possible tick: long enough for batches of a few
        #: thousand messages, so numpy's per-call overhead is spread over many readings.
        rate = sum(len(s.devices) / s.spec.interval for s in self.schedules)
        self.window = float(np.clip(_BATCH_MESSAGES / rate, 60.0, 86400.0)) if rate else 60.0

    @property
    def connections(self) -> list[int]:
        """Connection owners of this run, in fleet order."""
        return sorted(self._owner_devices)

    async def run(self, stop: asyncio.Event) -> None:
        """Connect the fleet (ramped) and produce messages until the end or ``stop``."""
        async with asyncio.TaskGroup() as group:
            tasks: list[asyncio.Task[object]] = []
            if isinstance(self.clock, VirtualClock):
                # As fast as possible: the whole fleet is online from the first instant.
                await self._connect_all()
            else:
                tasks.append(group.create_task(self._connect_all(), name="barnstorm-connect-ramp"))
            producer = group.create_task(self._produce(), name="barnstorm-producer")
            stopper = group.create_task(stop.wait(), name="barnstorm-stop-watch")
            tasks += [producer, stopper]
            await asyncio.wait([producer, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
        self.stats.simulated_until = min(self.clock.now(), self.end)

    # Connections ---------------------------------------------------------------------

    async def _connect_all(self) -> None:
        owners = self.connections
        if isinstance(self.clock, VirtualClock) or self.connect_rate is None:
            interval = 0.0
        else:
            interval = 1.0 / self.connect_rate
        limiter = asyncio.Semaphore(_CONNECT_CONCURRENCY)
        loop = asyncio.get_running_loop()
        async with asyncio.TaskGroup() as group:
            next_start = loop.time()
            for owner in owners:
                await limiter.acquire()
                if interval:
                    delay = next_start - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    next_start = max(next_start + interval, loop.time() - 1.0)
                group.create_task(
                    self._connect_one(owner, limiter), name=f"barnstorm-connect-{owner}"
                )

    async def _connect_one(self, owner: int, limiter: asyncio.Semaphore) -> None:
        try:
            for attempt, delay in enumerate((*_RETRY_DELAYS, None)):
                try:
                    await self.transport.connect(owner)
                except (ConnectError, AuthError) as exc:
                    if delay is None or isinstance(exc, AuthError):
                        log.warning(
                            "device connection %s gave up after %d attempts: %s",
                            owner,
                            attempt + 1,
                            exc,
                        )
                        return
                    await asyncio.sleep(delay)
                    continue
                self._connected_owners.append(owner)
                return
        finally:
            limiter.release()

    def _activate_new_connections(self) -> None:
        if not self._connected_owners:
            return
        owners, self._connected_owners = self._connected_owners, []
        devices = [d for owner in owners for d in self._owner_devices.get(owner, ())]
        now = self.clock.now()
        for schedule in self.schedules:
            schedule.activate(devices, now)
        self.stats.connected_devices += len(devices)

    # Production ----------------------------------------------------------------------

    async def _produce(self) -> None:
        clock = self.clock
        virtual = isinstance(clock, VirtualClock)
        while True:
            self._activate_new_connections()
            upcoming = min((s.earliest() for s in self.schedules), default=float("inf"))
            if upcoming >= self.end:
                if virtual or clock.now() >= self.end:
                    return
                # Nothing due before the end, or nothing connected yet: wait and look again.
                await clock.sleep_until(
                    min(self.end, clock.now() + _MAX_SLEEP * (clock.speed or 1))
                )
                continue
            if not virtual:
                upcoming = min(upcoming, clock.now() + _MAX_SLEEP * (clock.speed or 1))
            await clock.sleep_until(upcoming)
            now = clock.now()
            horizon = min(now + self.window if virtual else np.nextafter(now, np.inf), self.end)
            self._tick(horizon)

    def _tick(self, horizon: float) -> None:
        """Send every message due before ``horizon``, in time order."""
        fired: list[tuple[Schedule, IntArray, FloatArray]] = []
        for schedule in self.schedules:
            taken = schedule.fire(horizon)
            if taken is not None:
                fired.append((schedule, *taken))
        if not fired:
            return
        self.stats.ticks += 1
        columns = [s.readings(idx, due, self.utc_offsets, self.modulators) for s, idx, due in fired]
        # Merge the batches into one time-ordered stream (stable: ties keep schedule order).
        which = np.concatenate([np.full(len(idx), i) for i, (_, idx, _) in enumerate(fired)])
        row = np.concatenate([np.arange(len(idx)) for _, idx, _ in fired])
        due_all = np.concatenate([due for _, _, due in fired])
        order = np.argsort(due_all, kind="stable")
        stamps = iso_stamps(due_all[order])
        clock = self.clock
        next_seq = self.next_seq
        send = self.transport.send
        owners = self.owners
        for i, r, due, ts in zip(
            which[order].tolist(),
            row[order].tolist(),
            due_all[order].tolist(),
            stamps,
            strict=True,
        ):
            schedule, idx, _ = fired[i]
            position = int(idx[r])
            device = int(schedule.devices[position])
            seq = int(next_seq[device])
            next_seq[device] = seq + 1
            values = [column[r] for column in columns[i]]
            payload = schedule.encoder.encode(device, seq, ts, values)
            send(
                Message(
                    device,
                    schedule.type_code,
                    int(owners[device]),
                    schedule.spec.kind,
                    seq,
                    schedule.topics[position],
                    payload,
                    clock.due_at(due),
                )
            )
        self.stats.generated += len(order)
        self.stats.simulated_until = float(due_all.max())
