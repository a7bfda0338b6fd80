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
import itertools
import logging
import operator
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from simulator.arrays import FloatArray, IntArray
from simulator.engine.buffers import OfflineBuffers
from simulator.engine.clock import Clock, VirtualClock
from simulator.engine.payload import malform
from simulator.engine.scenarios import Scenario
from simulator.engine.schedule import Readings, Schedule, TickBatch
from simulator.errors import AuthError, ConfigError, ConnectError
from simulator.fleet.build import Fleet
from simulator.fleet.imperfections import DeviceFlaws
from simulator.fleet.profiles import DeviceProfile
from simulator.messages import BACKFILL, DUPLICATE, MALFORMED, Message, Outcome
from simulator.models.base import Modulator
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
#: A real-time tick hands its messages to the transport this many at a time, the loop
#: running in between: a tick of thousands (a fast --speed) would otherwise hold up every
#: acknowledgement and timer for milliseconds. Small enough for well under a millisecond
#: of packets, large enough that a connection's messages still leave in few writes.
_SEND_CHUNK = 64
#: Connections attempted at once during the ramp.
_CONNECT_CONCURRENCY = 256
_RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
#: Messages per as-fast-as-possible tick to aim for, and per connection: a connection's
#: messages of a tick leave in one socket write, so more of them per tick mean fewer
#: system calls (bounded, so a tick's messages stay a few tens of megabytes).
_BATCH_MESSAGES = 4096
_BATCH_PER_CONNECTION = 16
_BATCH_MAX = 65536


async def _readings(steps: Generator[None, None, Readings], pause: bool) -> Readings:
    """Run stepwise readings to their end, with ``pause`` letting the event loop run
    before each step."""
    while True:
        if pause:
            await asyncio.sleep(0)
        try:
            next(steps)
        except StopIteration as end:
            result: Readings = end.value
            return result


def _check_kinds(kinds: Sequence[str], profiles: Sequence[DeviceProfile]) -> None:
    """``--kinds`` names only kinds some selected device type sends."""
    known = {kind for profile in profiles for kind in profile.messages}
    unknown = sorted(set(kinds) - known)
    if unknown:
        raise ConfigError(
            "--kinds",
            f"no device type here sends {', '.join(unknown)} (kinds: {', '.join(sorted(known))})",
        )


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
        kinds: Sequence[str] | None = None,
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
        capacity = np.zeros(fleet.devices.count, np.int64)
        backfill = np.zeros(fleet.devices.count, np.float64)
        self.schedules: list[Schedule] = []
        devices_in_run: list[IntArray] = []
        streams = np.random.SeedSequence([seed, 1]).spawn(len(selected))
        for device_type, stream in zip(selected, streams, strict=True):
            profile = profiles[device_type].clean() if clean else profiles[device_type]
            devices = fleet.devices.of_type(device_type)
            if fleet.included is not None:  # a device map: only the product's devices
                devices = devices[fleet.included[devices]]
            index, count = shard
            if count > 1:
                # Shards split the fleet by farm, so a site and its gateway stay together.
                devices = devices[fleet.devices.farm[devices] % count == index]
            devices_in_run.append(devices)
            capacity[devices] = profile.buffer_messages
            backfill[devices] = profile.backfill_per_minute / 60.0
            self.schedules += self._type_schedules(
                profile, devices, stream, start, seed, topic_template, kinds
            )
        if kinds:
            _check_kinds(kinds, [profiles[name] for name in selected])
        self.devices = (
            np.sort(np.concatenate(devices_in_run)) if devices_in_run else np.zeros(0, np.int64)
        )
        #: per fleet device: the next sequence number (kept across reconnects).
        self.next_seq = np.zeros(fleet.devices.count, np.int64)
        self._owner_devices: dict[int, list[int]] = {}
        for device in self.devices.tolist():
            self._owner_devices.setdefault(int(self.owners[device]), []).append(device)
        self._connected_owners: list[int] = []
        #: owners the connection ramp has not finished with (not yet tried, or still
        #: connecting): a scenario's edge leaves them to it, or two connects would go out
        #: under one client id and the broker would close one of them.
        self._ramping: set[int] = set()
        self._activated = np.zeros(fleet.devices.count, np.bool_)
        self.buffers = OfflineBuffers(capacity, backfill)
        self._rng = np.random.default_rng([seed, 2])
        self._last_tick = start
        #: look-ahead of an as-fast-as-possible tick: long enough for batches of a few
        #: thousand messages, so numpy's per-call overhead is spread over many readings.
        rate = sum(len(s.devices) / s.spec.interval for s in self.schedules)
        batch = min(
            max(_BATCH_MESSAGES, _BATCH_PER_CONNECTION * len(self._owner_devices)), _BATCH_MAX
        )
        self.window = float(np.clip(batch / rate, 60.0, 86400.0)) if rate else 60.0

    def _type_schedules(
        self,
        profile: DeviceProfile,
        devices: IntArray,
        stream: np.random.SeedSequence,
        start: float,
        seed: int,
        topic_template: str,
        kinds: Sequence[str] | None,
    ) -> list[Schedule]:
        """One device type's schedules, one per message kind (``kinds`` picks some), with
        the type's imperfections drawn once for all its kinds."""
        flaw_stream, *kind_streams = stream.spawn(len(profile.messages) + 1)
        fleet = self.fleet
        flaws = DeviceFlaws(
            profile.imperfections,
            fleet.devices.count,
            devices,
            np.random.default_rng(flaw_stream),
            seed,
        )
        return [
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
            for spec, kind_stream in zip(profile.messages.values(), kind_streams, strict=True)
            # A kind left out still has its stream spawned: the others keep theirs.
            if not kinds or spec.kind in kinds
        ]

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
        self._ramping = set(owners)
        if isinstance(self.clock, VirtualClock) or self.connect_rate is None:
            interval = 0.0
        else:
            interval = 1.0 / self.connect_rate
        limiter = asyncio.Semaphore(_CONNECT_CONCURRENCY)
        clock = self.clock
        async with asyncio.TaskGroup() as group:
            next_start = clock.monotonic()
            for owner in owners:
                await limiter.acquire()
                if interval:
                    delay = next_start - clock.monotonic()
                    if delay > 0:
                        await clock.pause(delay)
                    next_start = max(next_start + interval, clock.monotonic() - 1.0)
                group.create_task(self._ramp_one(owner, limiter), name=f"barnstorm-connect-{owner}")

    async def _ramp_one(self, owner: int, limiter: asyncio.Semaphore) -> None:
        try:
            await self._connect_one(owner, limiter)
        finally:
            self._ramping.discard(owner)

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
                    await self.clock.pause(delay)
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
            connected, ramping = self.transport.is_connected, self._ramping
            back = [
                o
                for o in self.connections
                if o not in down and o not in ramping and not connected(o)
            ]
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
            await self._tick(horizon, pause=not virtual)
            self._release_backfill(min(horizon, self.end))
            if virtual:
                await self.transport.ready()

    def _online(self, devices: IntArray, times: FloatArray) -> npt.NDArray[np.bool_]:
        """Whether each device can send at ``times``: connected and in no offline window."""
        owners = self.owners[devices]
        unique, where = np.unique(owners, return_inverse=True)
        is_connected = self.transport.is_connected
        connected = np.fromiter(map(is_connected, unique.tolist()), np.bool_, len(unique))
        online: npt.NDArray[np.bool_] = connected[where.reshape(-1)]
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

    async def _tick(self, horizon: float, *, pause: bool = False) -> None:
        """Send every message due before ``horizon``, in time order. With ``pause`` (real
        time) the loop gets a turn before each field of each schedule's readings and each
        handful of messages handed over, so the acknowledgements and timers waiting
        meanwhile are held up by one step, not by the whole tick (barnstorm's own lag,
        inside every latency it measures)."""
        fired = [
            (schedule, *taken)
            for schedule in self.schedules
            if (taken := schedule.fire(horizon)) is not None
        ]
        if not fired:
            return
        self.stats.ticks += 1
        batch = TickBatch(fired)
        seq = self._number(batch)
        stamped = batch.due.copy()
        for schedule, part in batch.parts():
            # The device's own clock stamps the message: drift since its last daily sync.
            stamped[part] += schedule.flaws.clock_error(batch.devices[part], batch.due[part])
        payloads = await self._encode(batch, seq, stamped, pause)
        messages = self._messages(batch, seq, payloads)
        if pause:
            for at in range(0, len(messages), _SEND_CHUNK):
                await asyncio.sleep(0)
                self.transport.send_many(messages[at : at + _SEND_CHUNK])
        else:
            self.transport.send_many(messages)
        self.stats.generated += len(batch.order)
        self.stats.buffered = len(self.buffers)
        self.stats.simulated_until = float(batch.due[batch.order[-1]])

    def _number(self, batch: TickBatch) -> IntArray:
        """Sequence numbers of the batch's messages: time order per device, across its
        message kinds, continuing where each device left off."""
        order = batch.order
        sorted_devices = batch.devices[order]
        by_device = np.argsort(sorted_devices, kind="stable")
        grouped = sorted_devices[by_device]
        first = np.r_[True, grouped[1:] != grouped[:-1]]
        starts = np.maximum.accumulate(np.where(first, np.arange(len(grouped)), 0))
        rank = np.arange(len(grouped)) - starts
        seq_sorted = np.empty(len(order), np.int64)
        seq_sorted[by_device] = self.next_seq[grouped] + rank
        seq = np.empty(len(order), np.int64)
        seq[order] = seq_sorted
        np.maximum.at(self.next_seq, sorted_devices, seq_sorted + 1)
        return seq

    async def _encode(
        self, batch: TickBatch, seq: IntArray, stamped: FloatArray, pause: bool
    ) -> list[bytes]:
        """Every message's payload, in batch order: each schedule's readings computed at
        once (field by field, the loop running between two with ``pause``), then encoded
        together."""
        stamps = iso_stamp_bytes(stamped)
        payloads: list[bytes] = []
        for (schedule, idx, due), part in zip(batch.fired, batch.slices(), strict=True):
            steps = schedule.readings(idx, due, self.utc_offsets, self.modulators, self.context)
            columns, missing = await _readings(steps, pause)
            payloads.extend(
                schedule.encoder.encode_many(
                    batch.devices[part].tolist(),
                    seq[part].tolist(),
                    stamps[part],
                    stamped[part].tolist(),
                    columns,
                    missing,
                )
            )
        return payloads

    def _messages(self, batch: TickBatch, seq: IntArray, payloads: list[bytes]) -> list[Message]:
        """The batch as messages in time order: what goes out now (with the fleet's
        duplicates and a scenario's malformed payloads), while what an offline device sends
        waits in its buffer."""
        order = batch.order
        due_sorted = batch.due[order]
        online = self._online(batch.devices[order], due_sorted)
        duplicate = self._rng.random(len(order)) < self._duplicate_rate(
            np.searchsorted(batch.bounds, order, side="right") - 1, batch.fired
        )
        malformed = (
            self.scenario.malformations(batch.devices[order], due_sorted, self._rng)
            if self.scenario is not None
            else None
        )
        kinds, type_codes, topics = batch.labels()
        # Every message built in one pass, in time order; the few that are offline, doubled
        # or malformed are then dealt with one by one.
        order_list = order.tolist()
        in_order = operator.itemgetter(*order_list) if len(order_list) > 1 else None

        def permuted(values: list[Any]) -> Iterable[Any]:
            return in_order(values) if in_order is not None else [values[order_list[0]]]

        devices = batch.devices[order]
        dues: Iterable[float | None] = (
            itertools.repeat(None)
            if isinstance(self.clock, VirtualClock)
            else map(self.clock.due_at, due_sorted.tolist())
        )
        messages = list(
            map(
                Message,
                devices.tolist(),
                permuted(type_codes),
                self.owners[devices].tolist(),
                permuted(kinds),
                seq[order].tolist(),
                permuted(topics),
                permuted(payloads),
                dues,
            )
        )
        if malformed is not None:
            for k, how in enumerate(malformed):
                if how is not None:
                    messages[k].payload = malform(messages[k].payload, how)
                    messages[k].flags = MALFORMED
                    self.stats.malformed += 1
        special = np.flatnonzero(~online | duplicate).tolist()
        return self._set_apart(messages, special, online) if special else messages

    def _set_apart(
        self, messages: list[Message], special: list[int], online: npt.NDArray[np.bool_]
    ) -> list[Message]:
        """``messages`` without those of offline devices (kept in their buffers) and with
        the fleet's duplicates after their originals; ``special``: the indices of both."""
        buffers = self.buffers
        sink = self.transport.sink
        outgoing: list[Message] = []
        done = 0
        for k in special:
            outgoing.extend(messages[done:k])
            done = k + 1
            message = messages[k]
            if not online[k]:
                # Sent by the schedule, kept by the device until it is back online.
                sink.message_sent(message)
                overflow = buffers.add(message)
                if overflow is not None:
                    self._drop(overflow, "buffer_overflow")
                    self.stats.buffer_overflows += 1
                continue
            outgoing.append(message)
            # A QoS 1 resend after a lost acknowledgement: same seq, same payload.
            outgoing.append(replace(message, flags=message.flags | DUPLICATE))
            self.stats.duplicates += 1
        outgoing.extend(messages[done:])
        return outgoing

    @staticmethod
    def _duplicate_rate(
        which: IntArray, fired: list[tuple[Schedule, IntArray, FloatArray]]
    ) -> FloatArray:
        rates = np.array([s.flaws.rates.duplicate_rate for s, _, _ in fired])
        return np.asarray(rates[which], np.float64)
