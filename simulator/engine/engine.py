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
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulator.arrays import FloatArray, IntArray
from simulator.engine.clock import Clock, VirtualClock
from simulator.engine.payload import PayloadEncoder, malform
from simulator.engine.scenarios import Scenario
from simulator.errors import AuthError, ConnectError
from simulator.fleet.build import Fleet
from simulator.fleet.imperfections import DeviceFlaws
from simulator.fleet.profiles import DeviceProfile, MessageSpec
from simulator.fleet.topics import device_topic
from simulator.messages import BACKFILL, DUPLICATE, MALFORMED, Message, Outcome
from simulator.models.base import Batch, Modulator, SignalModel
from simulator.models.episodes import Outbreaks, RunContext, Weather
from simulator.transports.base import Transport
from simulator.units import iso_stamp_bytes

log = logging.getLogger(__name__)

#: How long a real-time engine may sleep before looking again (new connections).
_MAX_SLEEP = 0.25
#: A real-time tick also sends what falls due in the next 20 ms (real time): a tick has a
#: fixed cost, and thousands of devices would otherwise make thousands of one-message
#: ticks a second. 20 ms early is far inside a device's modelled jitter, and latency is
#: measured from the earlier of the due time and the send (see Metrics).
_LOOKAHEAD = 0.02
#: Connections attempted at once during the ramp.
_CONNECT_CONCURRENCY = 256
_RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
#: Messages per as-fast-as-possible tick to aim for, and per connection: a connection's
#: messages of a tick leave in one socket write, so more of them per tick mean fewer
#: system calls (bounded, so a tick's messages stay a few tens of megabytes).
_BATCH_MESSAGES = 4096
_BATCH_PER_CONNECTION = 16
_BATCH_MAX = 65536


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
    ) -> tuple[list[list[object]], list[list[bool] | None] | None]:
        """Every field's values for the messages ``idx`` due at ``due``, as Python columns,
        and which fields each message leaves out (None: none does)."""
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
        columns = self.encoder.columns([batch.values[f.name] for f in self.spec.fields])
        missing = self.flaws.missing(len(idx), len(self.spec.fields), self.rng)
        if missing is None:
            return columns, None
        # Only rows that really leave a field out take the slower encoding path.
        rows: list[list[bool]] = missing.tolist()
        gaps: list[bool] = np.asarray(missing.any(axis=1), np.bool_).tolist()
        return columns, [row if gap else None for row, gap in zip(rows, gaps, strict=True)]


@dataclass
class EngineStats:
    """What the engine itself observed (the transport's outcomes are in the metrics)."""

    ticks: int = 0
    generated: int = 0
    connected_devices: int = 0
    simulated_until: float = 0.0
    buffered: int = 0  # messages waiting in offline devices right now
    backfilled: int = 0  # messages sent late from a buffer
    buffer_overflows: int = 0  # messages dropped because a buffer was full
    duplicates: int = 0
    malformed: int = 0


class _Buffers:
    """What offline devices keep to send later: bounded per device, oldest dropped first."""

    def __init__(self, capacity: npt.NDArray[np.int64], rate_per_s: FloatArray) -> None:
        self.capacity = capacity
        self.rate = rate_per_s
        self.pending: dict[int, deque[Message]] = {}
        self.credit: dict[int, float] = {}

    def __len__(self) -> int:
        return sum(len(queue) for queue in self.pending.values())

    def add(self, message: Message) -> Message | None:
        """Keep ``message``; return the one that fell out of a full buffer, if any."""
        queue = self.pending.setdefault(message.device, deque())
        if self.capacity[message.device] <= 0:
            return message
        queue.append(message)
        if len(queue) > self.capacity[message.device]:
            return queue.popleft()
        return None

    def release(
        self, online: Callable[[list[int]], npt.NDArray[np.bool_]], elapsed: float
    ) -> list[Message]:
        """Messages online devices may send now, at their backfill rate."""
        devices = [d for d, queue in self.pending.items() if queue]
        if not devices:
            return []
        released: list[Message] = []
        for device, ok in zip(devices, online(devices).tolist(), strict=True):
            if not ok:
                self.credit.pop(device, None)
                continue
            credit = self.credit.get(device, 1.0) + elapsed * float(self.rate[device])
            queue = self.pending[device]
            count = min(int(credit), len(queue))
            released.extend(queue.popleft() for _ in range(count))
            self.credit[device] = credit - count
            if not queue:
                del self.pending[device]
                self.credit.pop(device, None)
        return released


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
        scenario: Scenario | None = None,
        clean: bool = False,
        realistic: bool = True,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        self.fleet = fleet
        self.transport = transport
        self.clock = clock
        self.start = start
        self.end = start + duration
        self.scenario = scenario
        if scenario is not None:
            scenario.bind(fleet, start, seed)
        self.modulators = [*modulators, *(scenario.modulators if scenario else ())]
        self.connect_rate = connect_rate
        self.stats = EngineStats(simulated_until=start)
        self.utc_offsets = fleet.utc_offsets(start)
        #: outbreaks and weather; ``realistic=False`` gives a healthy fleet in mild weather.
        self.context = (
            RunContext(Outbreaks(seed, [t.health for t in fleet.templates]), Weather(seed))
            if realistic
            else None
        )
        selected = sorted(device_types) if device_types else sorted(profiles)
        self.owners = fleet.connection_owners(per_gateway)
        self.owner_list: list[int] = self.owners.tolist()
        streams = np.random.SeedSequence([seed, 1]).spawn(len(selected))
        self.schedules: list[Schedule] = []
        devices_in_run: list[IntArray] = []
        capacity = np.zeros(fleet.devices.count, np.int64)
        backfill = np.zeros(fleet.devices.count, np.float64)
        for device_type, stream in zip(selected, streams, strict=True):
            profile = profiles[device_type].clean() if clean else profiles[device_type]
            devices = fleet.devices.of_type(device_type)
            index, count = shard
            if count > 1:
                # Shards split the fleet by farm, so a site and its gateway stay together.
                devices = devices[fleet.devices.farm[devices] % count == index]
            devices_in_run.append(devices)
            capacity[devices] = profile.buffer_messages
            backfill[devices] = profile.backfill_per_minute / 60.0
            flaw_stream, *kind_streams = stream.spawn(len(profile.messages) + 1)
            flaws = DeviceFlaws(
                profile.imperfections,
                fleet.devices.count,
                devices,
                np.random.default_rng(flaw_stream),
                seed,
            )
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
                        flaws,
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
        self._activated = np.zeros(fleet.devices.count, np.bool_)
        self.buffers = _Buffers(capacity, backfill)
        self._rng = np.random.default_rng([seed, 2])
        self._last_tick = start
        #: look-ahead of an as-fast-as-possible tick: long enough for batches of a few
        #: thousand messages, so numpy's per-call overhead is spread over many readings.
        rate = sum(len(s.devices) / s.spec.interval for s in self.schedules)
        batch = min(
            max(_BATCH_MESSAGES, _BATCH_PER_CONNECTION * len(self._owner_devices)), _BATCH_MAX
        )
        self.window = float(np.clip(batch / rate, 60.0, 86400.0)) if rate else 60.0

    @property
    def connections(self) -> list[int]:
        """Connection owners of this run, in fleet order."""
        return sorted(self._owner_devices)

    async def run(self, stop: asyncio.Event) -> None:
        """Connect the fleet (ramped) and produce messages until the end or ``stop``."""
        virtual = isinstance(self.clock, VirtualClock)
        async with asyncio.TaskGroup() as group:
            tasks: list[asyncio.Task[object]] = []
            if virtual:
                # As fast as possible: the whole fleet is online from the first instant.
                await self._connect_all()
            else:
                tasks.append(group.create_task(self._connect_all(), name="barnstorm-connect-ramp"))
                if self.scenario is not None:
                    tasks.append(
                        group.create_task(
                            self._drop_connections(), name="barnstorm-scenario-connections"
                        )
                    )
            producer = group.create_task(self._produce(), name="barnstorm-producer")
            stopper = group.create_task(stop.wait(), name="barnstorm-stop-watch")
            tasks += [producer, stopper]
            await asyncio.wait([producer, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
        self.stats.simulated_until = min(self.clock.now(), self.end)
        # What is still buffered in offline devices never left them: on the books as dropped.
        for queue in self.buffers.pending.values():
            for message in queue:
                self._drop(message, "offline_at_stop")
        self.buffers.pending.clear()
        self.stats.buffered = 0

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

    async def _connect_one(self, owner: int, limiter: asyncio.Semaphore | None = None) -> None:
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
            if limiter is not None:
                limiter.release()

    async def _drop_connections(self) -> None:
        """Drop the connections of devices a scenario takes offline, and bring them all back
        at once when the window ends (outages, power loss, reconnect storms)."""
        assert self.scenario is not None
        windows = self.scenario.events  # an edge of any event may start or end a window
        edges = sorted({e.start for e in windows} | {e.end for e in windows})
        for edge in edges:
            if edge >= self.end:
                break
            await self.clock.sleep_until(edge)
            devices = self.devices
            offline = self.scenario.offline(devices, np.full(len(devices), edge))
            down = set() if offline is None else {int(self.owners[d]) for d in devices[offline]}
            for owner in down:
                if self.transport.is_connected(owner):
                    await self.transport.disconnect(owner)
            connected = self.transport.is_connected
            back = [o for o in self.connections if o not in down and not connected(o)]
            async with asyncio.TaskGroup() as group:  # together: the thundering herd
                for owner in back:
                    group.create_task(self._connect_one(owner), name=f"barnstorm-reconnect-{owner}")

    def _activate_new_connections(self) -> None:
        if not self._connected_owners:
            return
        owners, self._connected_owners = self._connected_owners, []
        devices = [d for owner in owners for d in self._owner_devices.get(owner, ())]
        # A reconnect does not restart a schedule: only first connections activate one.
        fresh = [d for d in devices if not self._activated[d]]
        now = self.clock.now()
        for schedule in self.schedules:
            schedule.activate(fresh, now)
        self._activated[fresh] = True
        self.stats.connected_devices += len(fresh)

    # Production ----------------------------------------------------------------------

    async def _produce(self) -> None:
        clock = self.clock
        virtual = isinstance(clock, VirtualClock)
        while True:
            self._activate_new_connections()
            upcoming = min((s.earliest() for s in self.schedules), default=float("inf"))
            if upcoming >= self.end:
                if virtual or clock.now() >= self.end:
                    self._release_backfill(self.end)
                    return
                # Nothing due before the end, or nothing connected yet: wait and look again.
                await clock.sleep_until(
                    min(self.end, clock.now() + _MAX_SLEEP * (clock.speed or 1))
                )
                self._release_backfill(clock.now())
                continue
            if not virtual:
                upcoming = min(upcoming, clock.now() + _MAX_SLEEP * (clock.speed or 1))
            await clock.sleep_until(upcoming)
            now = clock.now()
            ahead = self.window if virtual else _LOOKAHEAD * (clock.speed or 1)
            horizon = min(now + ahead, self.end)
            self._tick(horizon)
            self._release_backfill(min(horizon, self.end))
            if virtual:
                await self.transport.ready()

    def _online(self, devices: IntArray, times: FloatArray) -> npt.NDArray[np.bool_]:
        """Whether each device can send at ``times``: connected and in no offline window."""
        owners = self.owners[devices]
        unique = np.unique(owners)
        connected = {int(o): self.transport.is_connected(int(o)) for o in unique.tolist()}
        online = np.fromiter((connected[int(o)] for o in owners.tolist()), np.bool_, len(owners))
        if self.scenario is not None:
            offline = self.scenario.offline(devices, times)
            if offline is not None:
                online &= ~offline
        return online

    def _drop(self, message: Message, reason: str) -> None:
        """A buffered message (already counted as sent) that will never leave its device."""
        self.transport.sink.message_done(message, Outcome.DROPPED, reason)

    def _release_backfill(self, now: float) -> None:
        elapsed = max(now - self._last_tick, 0.0)
        self._last_tick = now
        if not self.buffers.pending:
            return

        def online(devices: list[int]) -> npt.NDArray[np.bool_]:
            array = np.array(devices, np.int64)
            return self._online(array, np.full(len(array), now))

        released = self.buffers.release(online, elapsed)
        due = self.clock.due_at(now)
        for message in released:
            message.due = due  # latency of a backfilled message runs from its release
            message.flags |= BACKFILL
        self.transport.send_many(released)
        self.stats.backfilled += len(released)
        self.stats.buffered = len(self.buffers)

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
        # Merge the batches into one time-ordered stream (stable: ties keep schedule order).
        sizes = [len(idx) for _, idx, _ in fired]
        bounds = np.cumsum([0, *sizes])
        due_all = np.concatenate([due for _, _, due in fired])
        devices_all = np.concatenate([s.devices[idx] for s, idx, _ in fired])
        order = np.argsort(due_all, kind="stable")
        # Sequence numbers follow time order per device, across its message kinds.
        seq_all = np.empty(len(order), np.int64)
        sorted_devices = devices_all[order]
        by_device = np.argsort(sorted_devices, kind="stable")
        grouped = sorted_devices[by_device]
        first = np.r_[True, grouped[1:] != grouped[:-1]]
        starts = np.maximum.accumulate(np.where(first, np.arange(len(grouped)), 0))
        rank = np.arange(len(grouped)) - starts
        seq_sorted = np.empty(len(order), np.int64)
        seq_sorted[by_device] = self.next_seq[grouped] + rank
        seq_all[order] = seq_sorted
        np.maximum.at(self.next_seq, sorted_devices, seq_sorted + 1)
        # The device's own clock stamps the message: drift since its last daily sync.
        stamped = due_all.copy()
        for i, (schedule, _, _) in enumerate(fired):
            part = slice(bounds[i], bounds[i + 1])
            stamped[part] += schedule.flaws.clock_error(devices_all[part], due_all[part])
        stamps = iso_stamp_bytes(stamped)
        # Encode each batch in one tight pass.
        payloads: list[bytes] = []
        for i, (schedule, idx, due) in enumerate(fired):
            columns, missing = schedule.readings(
                idx, due, self.utc_offsets, self.modulators, self.context
            )
            part = slice(bounds[i], bounds[i + 1])
            encode = schedule.encoder.encode
            rows = zip(*columns, strict=True) if columns else iter([()] * sizes[i])
            if missing is None:
                payloads.extend(
                    [
                        encode(d, q, t, e, row, None)
                        for d, q, t, e, row in zip(
                            devices_all[part].tolist(),
                            seq_all[part].tolist(),
                            stamps[part],
                            stamped[part].tolist(),
                            rows,
                            strict=True,
                        )
                    ]
                )
            else:
                payloads.extend(
                    [
                        encode(d, q, t, e, row, gaps)
                        for d, q, t, e, row, gaps in zip(
                            devices_all[part].tolist(),
                            seq_all[part].tolist(),
                            stamps[part],
                            stamped[part].tolist(),
                            rows,
                            missing,
                            strict=True,
                        )
                    ]
                )
        due_sorted = due_all[order]
        online = self._online(devices_all[order], due_sorted)
        duplicate = self._rng.random(len(order)) < self._duplicate_rate(
            np.searchsorted(bounds, order, side="right") - 1, fired
        )
        malformed = (
            self.scenario.malformations(devices_all[order], due_sorted, self._rng)
            if self.scenario is not None
            else None
        )
        # Who each message is: its schedule, its topic.
        schedules = [s for s, _, _ in fired for _ in range(0)]  # filled below, per index
        kinds: list[str] = []
        type_codes: list[int] = []
        topics: list[str] = []
        for schedule, idx, _ in fired:
            count = len(idx)
            kinds.extend([schedule.spec.kind] * count)
            type_codes.extend([schedule.type_code] * count)
            schedule_topics = schedule.topics
            topics.extend([schedule_topics[p] for p in idx.tolist()])
        del schedules
        clock_due = (
            (lambda _due: None) if isinstance(self.clock, VirtualClock) else self.clock.due_at
        )
        owners = self.owner_list
        buffers = self.buffers
        sink = self.transport.sink
        outgoing: list[Message] = []
        append = outgoing.append
        flat_devices = devices_all.tolist()
        flat_seq = seq_all.tolist()
        for k, (j, due, is_online, twice) in enumerate(
            zip(
                order.tolist(),
                due_sorted.tolist(),
                online.tolist(),
                duplicate.tolist(),
                strict=True,
            )
        ):
            device = flat_devices[j]
            payload = payloads[j]
            flags = 0
            how = malformed[k] if malformed is not None else None
            if how is not None:
                payload = malform(payload, how)
                flags = MALFORMED
                self.stats.malformed += 1
            message = Message(
                device,
                type_codes[j],
                owners[device],
                kinds[j],
                flat_seq[j],
                topics[j],
                payload,
                clock_due(due),
                0.0,
                flags,
            )
            if not is_online:
                # Sent by the schedule, kept by the device until it is back online.
                sink.message_sent(message)
                overflow = buffers.add(message)
                if overflow is not None:
                    self._drop(overflow, "buffer_overflow")
                    self.stats.buffer_overflows += 1
                continue
            append(message)
            if twice:
                # A QoS 1 resend after a lost acknowledgement: same seq, same payload.
                append(
                    Message(
                        device,
                        message.type_code,
                        message.connection,
                        message.kind,
                        message.seq,
                        message.topic,
                        payload,
                        message.due,
                        0.0,
                        flags | DUPLICATE,
                    )
                )
                self.stats.duplicates += 1
        self.transport.send_many(outgoing)
        self.stats.generated += len(order)
        self.stats.buffered = len(buffers)
        self.stats.simulated_until = float(due_sorted[-1])

    @staticmethod
    def _duplicate_rate(
        which: IntArray, fired: list[tuple[Schedule, IntArray, FloatArray]]
    ) -> FloatArray:
        rates = np.array([s.flaws.rates.duplicate_rate for s, _, _ in fired])
        return np.asarray(rates[which], np.float64)
