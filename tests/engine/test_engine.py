"""The engine on virtual and scaled time, against barnstorm's own seams (memory transports)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from simulator.arrays import FloatArray, Values
from simulator.engine.clock import ScaledClock, VirtualClock
from simulator.engine.engine import Engine
from simulator.engine.scenarios import load_scenario
from simulator.errors import ConfigError
from simulator.fleet.load import load_fleet
from simulator.messages import Message, Outcome
from simulator.metrics.metrics import Metrics
from simulator.models.base import Batch
from simulator.transports.base import Transport
from simulator.transports.memory import MemoryTransport
from simulator.units import parse_instant

START = parse_instant("2026-02-02T00:00:00Z")


def _engine(
    transport_cls: type[MemoryTransport] = MemoryTransport,
    *,
    farms: int = 4,
    clock: VirtualClock | ScaledClock | None = None,
    duration: float = 3600.0,
    **kwargs: object,
) -> tuple[Engine, MemoryTransport, Metrics]:
    fleet, profiles = load_fleet(farms, 99, None, None)
    metrics = Metrics(fleet.devices.type_names)
    transport = transport_cls(metrics)
    engine = Engine(
        fleet,
        profiles,
        transport,
        clock or VirtualClock(START),
        start=START,
        duration=duration,
        seed=99,
        topic_template="t/{device_id}/{kind}",
        clean=True,  # exact seq and timing checks: no duplicates, drift or jitter
        **kwargs,  # type: ignore[arg-type]
    )
    return engine, transport, metrics


async def _run(engine: Engine, transport: MemoryTransport) -> None:
    async with transport:
        await engine.run(asyncio.Event())
        await transport.drain(5.0)


async def test_a_simulated_day_takes_no_real_day() -> None:
    """On the virtual clock a whole day of a fleet runs at once, every device sends each kind
    at its interval, and seq counts up per device in time order."""
    engine, transport, metrics = _engine(duration=86400.0)
    await _run(engine, transport)
    payloads = transport.payloads()
    per_device: dict[str, list[dict[str, object]]] = defaultdict(list)
    for payload in payloads:
        per_device[str(payload["device_id"])].append(payload)
    counts = {"summary": 96, "reading": 288, "heartbeat": 1440}
    for device, messages in per_device.items():
        assert [m["seq"] for m in messages] == list(range(len(messages)))
        assert [m["ts"] for m in messages] == sorted(str(m["ts"]) for m in messages)
        kinds: dict[str, int] = defaultdict(int)
        for message in messages:
            kinds[str(message["kind"])] += 1
        for kind, expected in counts.items():
            if kind in kinds:
                assert abs(kinds[kind] - expected) <= 1, (device, kind, kinds[kind])
        if "summary" in kinds:
            assert kinds["daily"] == 1, device
    totals = metrics.totals()
    assert totals.sent == totals.acknowledged == len(payloads)
    assert engine.stats.connected_devices == engine.fleet.devices.count


async def test_device_types_filter_limits_the_run() -> None:
    """--device-types keeps only the named types; the others send nothing."""
    engine, transport, _ = _engine(device_types=["climate_node"])
    await _run(engine, transport)
    assert {p["device_type"] for p in transport.payloads()} == {"climate_node"}


async def test_kinds_filter_sends_the_same_messages_of_fewer_kinds() -> None:
    """--kinds daily generates only the daily messages: the same devices send them at the
    same instants as in a run of every kind, with every field of the kind (the readings
    are drawn anew: a tick's batches differ); a kind no device type sends is refused
    naming the flag."""
    everything, all_transport, _ = _engine(duration=3 * 86400.0)
    await _run(everything, all_transport)
    daily, daily_transport, _ = _engine(duration=3 * 86400.0, kinds=["daily"])
    await _run(daily, daily_transport)

    def envelope(payloads: list[dict[str, object]]) -> list[tuple[object, ...]]:
        return sorted((p["device_id"], p["ts"], p["kind"], p["fw"], *sorted(p)) for p in payloads)

    expected = [p for p in all_transport.payloads() if p["kind"] == "daily"]
    assert len(expected) > 100
    assert envelope(daily_transport.payloads()) == envelope(expected)
    with pytest.raises(ConfigError, match=r"--kinds: no device type here sends dialy"):
        _engine(kinds=["dialy"])


class SlowAcks(MemoryTransport):
    """Acknowledges every message 0.3 s after it was handed over (a slow target)."""

    async def open(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.pending = 0

    def send(self, message: Message) -> None:
        self.sink.message_sent(message)
        self.messages.append(message)
        self.pending += 1
        self.loop.call_later(0.3, self._ack, message)

    send_many = Transport.send_many  # one by one, through send() above

    def _ack(self, message: Message) -> None:
        self.pending -= 1
        self.sink.message_done(message, Outcome.ACKNOWLEDGED)

    @property
    def in_flight(self) -> int:
        return self.pending


async def test_schedule_is_open_loop_and_latency_counts_from_the_intended_instant() -> None:
    """A slow target does not slow the schedule: messages leave at their intended instants
    while earlier ones are still unacknowledged, and their latency includes the full wait."""
    clock = ScaledClock(START, speed=600.0)
    engine, transport, metrics = _engine(SlowAcks, clock=clock, duration=600.0, connect_rate=None)
    await _run(engine, transport)
    messages = transport.messages
    assert len(messages) > 50
    lateness = [m.sent_at - m.due for m in messages if m.due is not None]
    # handed over within a few scheduler ticks of the intended instant, not 0.3 s apart
    assert np.percentile(lateness, 95) < 0.1
    sent_times = sorted(m.sent_at for m in messages)
    assert sent_times[-1] - sent_times[0] < 1.5  # 600 simulated seconds at 600x
    totals = metrics.totals()
    assert totals.acknowledged == totals.sent
    assert totals.latency.percentile(0.5) >= 0.29


class StalledSends(MemoryTransport):
    """Stalls the event loop 20 ms before each hand-over (a client stuck in a blocking
    call), so messages leave later and later after their intended instants; acknowledges
    each at once."""

    def send(self, message: Message) -> None:
        time.sleep(0.02)
        self.sink.message_sent(message)
        self.messages.append(message)
        self.sink.message_done(message, Outcome.ACKNOWLEDGED)

    send_many = Transport.send_many  # one by one, through send() above


async def test_latency_counts_the_delay_of_a_late_send_not_only_the_wait_for_its_ack() -> None:
    """Messages handed over late (the sender stalled) carry that delay in their latency:
    it is measured from the intended instant, not from the send, so a stalled load
    generator shows as latency instead of hiding it (coordinated omission)."""
    clock = ScaledClock(START, speed=600.0)
    engine, transport, metrics = _engine(
        StalledSends, clock=clock, duration=600.0, connect_rate=None
    )
    await _run(engine, transport)
    lateness = np.array([m.sent_at - m.due for m in transport.messages if m.due is not None])
    assert len(lateness) > 50
    assert np.percentile(lateness, 90) > 0.5  # the stalls pile up
    latency = metrics.totals().latency
    # From the send, every latency would be about zero; from the intended instant, the
    # percentiles follow the lateness (the histogram's buckets are a few percent wide).
    assert latency.percentile(0.9) >= 0.9 * np.percentile(lateness, 90)
    assert latency.percentile(0.5) >= 0.9 * np.percentile(lateness, 50)


class SlowConnects(MemoryTransport):
    """Each connect takes 50 ms (a broker's handshake); records the connects that overlap
    one already under way for the same owner (two CONNECTs under one client id)."""

    async def open(self) -> None:
        self.connecting: set[int] = set()
        self.overlaps: list[int] = []
        self.connects = 0

    async def connect(self, connection: int) -> None:
        if connection in self.connecting:
            self.overlaps.append(connection)
        self.connecting.add(connection)
        self.connects += 1
        try:
            await asyncio.sleep(0.05)
            await super().connect(connection)
        finally:
            self.connecting.discard(connection)


async def test_a_scenario_edge_leaves_the_ramp_its_devices(tmp_path: Path) -> None:
    """A storm's edges fall while the connection ramp still runs: the edge brings back
    only devices the ramp is done with, so no device is connected twice at once (the
    broker would close one of the two, and a clean run would show takeovers)."""
    storm = tmp_path / "storm.toml"
    storm.write_text(
        '[[events]]\ntype = "reconnect_storm"\nat = "1s"\nduration = "1s"\n'
        'where = { share = 0.5, unit = "site" }\n'
    )
    clock = ScaledClock(START, speed=1.0)
    engine, transport, _ = _engine(
        SlowConnects,
        farms=4,
        clock=clock,
        duration=4.0,
        connect_rate=40.0,
        scenario=load_scenario(storm),
    )
    owners = len(engine.connections)
    assert owners / 40.0 > 2.0  # the ramp outlasts both edges
    await _run(engine, transport)
    assert transport.overlaps == []  # type: ignore[attr-defined]
    assert transport.connects >= owners  # type: ignore[attr-defined]


class RecordedConnects(MemoryTransport):
    """Records when each connection was made."""

    async def open(self) -> None:
        self.connect_times: list[float] = []

    async def connect(self, connection: int) -> None:
        self.connect_times.append(asyncio.get_running_loop().time())
        await super().connect(connection)


async def test_connect_ramp_spreads_connections_over_time() -> None:
    """With --connect-rate 200/s, 100 connections take about half a second, not an instant,
    and a device starts sending only once its connection is up."""
    clock = ScaledClock(START, speed=1.0)
    engine, transport, _ = _engine(
        RecordedConnects, farms=4, clock=clock, duration=2.0, connect_rate=200.0
    )
    owners = len(engine.connections)
    assert owners > 60
    await _run(engine, transport)
    times = transport.connect_times  # type: ignore[attr-defined]
    assert len(times) == owners
    spread = max(times) - min(times)
    assert spread == pytest.approx((owners - 1) / 200.0, abs=0.15)


class SkippedPauses(ScaledClock):
    """A real-time clock whose real waits pass at once: its real time jumps ahead by each
    wait, and every wait is written down."""

    def __init__(self, start: float) -> None:
        self.paused: list[float] = []
        super().__init__(start, speed=1.0)

    def monotonic(self) -> float:  # type: ignore[override]
        return time.monotonic() + sum(self.paused)

    async def pause(self, seconds: float) -> None:
        self.paused.append(seconds)
        await asyncio.sleep(0)


async def test_connect_ramp_waits_on_the_injected_clock() -> None:
    """The connection ramp waits through the clock it is given, never on its own: at 10
    connections a second the clock is asked for the whole ramp, (owners - 1) / 10 seconds,
    and a clock that lets those pass at once finishes the ramp in a fraction of that."""
    clock = SkippedPauses(START)
    engine, transport, _ = _engine(
        RecordedConnects, farms=4, clock=clock, duration=3600.0, connect_rate=10.0
    )
    owners = len(engine.connections)
    ramp = (owners - 1) / 10.0
    stop = asyncio.Event()
    started = time.monotonic()
    async with transport, asyncio.TaskGroup() as group:
        group.create_task(engine.run(stop))
        while len(transport.connect_times) < owners and time.monotonic() - started < ramp:  # type: ignore[attr-defined]
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - started
        stop.set()
    assert len(transport.connect_times) == owners  # type: ignore[attr-defined]
    assert sum(clock.paused) == pytest.approx(ramp, rel=0.05)
    assert elapsed < ramp / 4


class DoubleCoughs:
    """A modulator standing in for an outbreak: twice the cough rate on one farm."""

    def modulate(self, name: str, batch: Batch, values: FloatArray) -> FloatArray:
        if name != "cough_rate":
            return values
        return np.where(batch.farms == 0, values * 3.0, values)


async def test_modulators_reach_latent_rates_of_the_models() -> None:
    """A modulator on the latent cough rate triples the coughs of the farm it targets and no
    other: events can shape any field without touching the models."""
    plain, plain_transport, _ = _engine(farms=3, duration=3 * 86400.0)
    await _run(plain, plain_transport)
    boosted, boosted_transport, _ = _engine(
        farms=3, duration=3 * 86400.0, modulators=[DoubleCoughs()]
    )
    await _run(boosted, boosted_transport)

    def coughs(transport: MemoryTransport) -> dict[str, int]:
        totals: dict[str, int] = defaultdict(int)
        for payload in transport.payloads():
            if payload["kind"] == "summary":
                totals[str(payload["farm_id"])] += int(payload["cough_count"])
        return totals

    before, after = coughs(plain_transport), coughs(boosted_transport)
    assert after["farm-00001"] > 2.0 * before["farm-00001"]
    for farm in ("farm-00002", "farm-00003"):
        assert after[farm] == pytest.approx(before[farm], rel=0.1)


async def test_stopping_mid_run_keeps_every_message_on_the_books() -> None:
    """A stop in the middle of a run ends it promptly and every message produced so far is
    accounted for (sent = acknowledged + failed + dropped + in flight)."""
    clock = ScaledClock(START, speed=300.0)
    engine, transport, metrics = _engine(SlowAcks, clock=clock, duration=86400.0, connect_rate=None)
    stop = asyncio.Event()
    async with transport:
        asyncio.get_running_loop().call_later(1.0, stop.set)
        started = asyncio.get_running_loop().time()
        await engine.run(stop)
        assert asyncio.get_running_loop().time() - started < 2.0
        totals = metrics.totals()
        assert totals.sent > 0
        assert totals.in_flight > 0  # the slow target still owes acknowledgements
        assert totals.sent == totals.settled + totals.in_flight
        await transport.drain(2.0)
    totals = metrics.totals()
    assert totals.in_flight == 0
    assert totals.acknowledged == totals.sent


def test_payload_is_json_with_the_envelope_first() -> None:
    """A payload starts with the envelope in the documented order, then the fields."""
    engine, transport, _ = _engine(farms=1, duration=900.0)
    asyncio.run(_run(engine, transport))
    message = next(m for m in transport.messages if b'"kind":"summary"' in m.payload)
    payload = json.loads(message.payload)
    assert list(payload)[:8] == [
        "device_id",
        "device_type",
        "farm_id",
        "room_id",
        "fw",
        "seq",
        "ts",
        "kind",
    ]
    assert list(payload)[8:] == [
        "cough_count",
        "temp_c_1",
        "temp_c_2",
        "rh_pct",
        "sound_leq_dba",
        "rssi_dbm",
    ]
    assert message.topic == f"t/{payload['device_id']}/summary"


class HalfConnected(MemoryTransport):
    """Brings up only the connections of even number; the others stay down all run."""

    async def connect(self, connection: int) -> None:
        if connection % 2 == 0:
            await super().connect(connection)


async def test_a_device_whose_connection_is_down_sends_nothing() -> None:
    """Only devices whose connection is up send: with every odd connection down for the
    whole run, no message of theirs reaches the transport, while the others all send; what
    the others kept waiting is on the books, dropped at the stop."""
    engine, transport, metrics = _engine(HalfConnected, farms=4, duration=3600.0)
    await _run(engine, transport)
    owners = engine.owners
    senders = {int(owners[m.device]) for m in transport.messages}
    assert senders == {o for o in engine.connections if o % 2 == 0}
    totals = metrics.totals()
    assert totals.acknowledged == len(transport.messages) > 0
    assert totals.dropped == totals.errors["offline_at_stop"] == totals.sent - totals.acknowledged
    assert totals.dropped > 0


class _Turns:
    """Counts the event loop's turns: a task that takes one at every turn."""

    def __init__(self) -> None:
        self.count = 0

    async def spin(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(0)


class _Handfuls(MemoryTransport):
    """Notes how many messages each hand-over brings, and at which turn of the loop."""

    turns: _Turns

    async def open(self) -> None:
        self.handfuls: list[tuple[int, int]] = []

    def send_many(self, messages: list[Message]) -> None:
        self.handfuls.append((len(messages), self.turns.count))
        super().send_many(messages)


async def _watched(clock: VirtualClock | ScaledClock) -> tuple[list[int], _Handfuls]:
    """Run 12 farms for 20 minutes, noting the loop's turn at every field computed and
    every hand-over to the transport."""
    turns = _Turns()
    engine, transport, _ = _engine(
        _Handfuls, farms=12, clock=clock, duration=1200.0, connect_rate=None
    )
    assert isinstance(transport, _Handfuls)
    transport.turns = turns
    fields: list[int] = []

    def noted(generate: Callable[[Batch], Values]) -> Callable[[Batch], Values]:
        def generate_noted(batch: Batch) -> Values:
            fields.append(turns.count)
            return generate(batch)

        return generate_noted

    for schedule in engine.schedules:
        for model in schedule.models:
            model.generate = noted(model.generate)  # type: ignore[method-assign,assignment]
    async with asyncio.TaskGroup() as group:
        spinner = group.create_task(turns.spin(), name="test-turns")
        await _run(engine, transport)
        spinner.cancel()
    return fields, transport


async def test_a_real_time_tick_lets_the_loop_run_between_fields_and_handfuls() -> None:
    """In real time every field of a tick is computed in its own turn of the event loop
    and the messages go to the transport a handful at a time, each in its own turn (what
    waits on the loop meanwhile, acknowledgements and timers, is held up by one step, not
    a tick); as fast as possible, a tick's fields and messages go at once."""
    # The clock starts an hour early: a fast one would run past the start while the
    # fleet loads; the engine waits for it.
    fields, transport = await _watched(ScaledClock(START - 3600.0, speed=6000.0))
    assert len(fields) > 20
    assert all(a < b for a, b in itertools.pairwise(fields))
    sizes = [size for size, _ in transport.handfuls]
    assert max(sizes) <= 64 < sum(sizes)
    assert all(a[1] < b[1] for a, b in itertools.pairwise(transport.handfuls))

    fields, transport = await _watched(VirtualClock(START))
    assert any(a == b for a, b in itertools.pairwise(fields))
    assert max(size for size, _ in transport.handfuls) > 64
