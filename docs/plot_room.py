"""Plot one room through a batch and an outbreak: ``python docs/plot_room.py``.

Runs barnstorm's engine on the virtual clock for one wean-to-finish room, from a few days
before placement to the departure of the pigs, with an acute outbreak in week 6 on top of
whatever the room catches by itself, and writes ``docs/room_batch.svg``: coughs per 100
pigs per hour for each monitor, the daily respiratory health score, and the room's
temperature against its setpoint.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import orjson

from simulator.engine.clock import VirtualClock
from simulator.engine.engine import Engine
from simulator.engine.scenarios import load_scenario
from simulator.fleet.load import load_fleet
from simulator.messages import Message
from simulator.metrics.metrics import Metrics
from simulator.report.svg import Series, line_chart, svg_document
from simulator.transports.memory import MemoryTransport
from simulator.units import parse_instant

DAY = 86400.0
OUT = Path(__file__).resolve().parent / "room_batch.svg"


class RoomOnly(MemoryTransport):
    """Keeps the decoded payloads of one room only."""

    def __init__(self, metrics: Metrics, room_id: str) -> None:
        super().__init__(metrics, keep=False)
        self.marker = f'"room_id":"{room_id}"'.encode()
        self.kept: list[dict[str, object]] = []

    def send_many(self, messages: list[Message]) -> None:
        super().send_many(messages)
        self.kept.extend(orjson.loads(m.payload) for m in messages if self.marker in m.payload)


def main() -> None:
    seed = 11
    fleet, profiles = load_fleet(2, seed, None, None)  # farm 1 is a US wean-to-finish farm
    rooms = fleet.rooms
    stage = [fleet.templates[int(t)].stage for t in rooms.template]
    room = next(i for i, s in enumerate(stage) if s == "wean_to_finish")
    room_id = rooms.ids[room]
    cycle = (rooms.batch_days[room] + rooms.empty_days[room]) * DAY
    placement = rooms.anchor[room] + cycle * np.ceil(
        (parse_instant("2026-01-01") - rooms.anchor[room]) / cycle
    )
    start = placement - 3 * DAY
    days = float(rooms.batch_days[room]) + 6
    with tempfile.TemporaryDirectory() as folder:
        scenario_file = Path(folder) / "outbreak.toml"
        scenario_file.write_text(
            '[[events]]\ntype = "outbreak"\nkind = "acute"\npeak = 4.0\nat = "38d"\n'
            f'duration = "10d"\nwhere = {{ rooms = ["{room_id}"] }}\n'
        )
        scenario = load_scenario(scenario_file)
    metrics = Metrics(fleet.devices.type_names)
    transport = RoomOnly(metrics, room_id)
    engine = Engine(
        fleet,
        profiles,
        transport,
        VirtualClock(start),
        start=start,
        duration=days * DAY,
        seed=seed,
        topic_template="t/{device_id}",
        device_types=["cough_monitor", "climate_node"],
        scenario=scenario,
        clean=True,
    )

    async def go() -> None:
        async with transport:
            await engine.run(asyncio.Event())

    asyncio.run(go())
    monitors = sorted({str(p["device_id"]) for p in transport.kept if p["kind"] == "summary"})
    pigs_each = rooms.pigs[room] / len(monitors)
    coughs: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    scores: dict[str, dict[int, float | None]] = defaultdict(dict)
    temps: dict[int, list[float]] = defaultdict(list)
    for p in transport.kept:
        t = parse_instant(str(p["ts"]))
        day = int((t - placement) // DAY)
        if p["kind"] == "summary":
            coughs[str(p["device_id"])][day] += float(p["cough_count"])  # type: ignore[arg-type]
        elif p["kind"] == "daily":
            scores[str(p["device_id"])][day] = p["rehs"]  # type: ignore[assignment]
        elif p["kind"] == "reading":
            temps[day].append(float(p["temp_c"]))  # type: ignore[arg-type]
    span = list(range(-3, int(days) - 3))
    positions = {d: fleet.devices.positions[fleet.devices.ids.index(d)] for d in monitors}
    cough_series = [
        Series(
            f"monitor {positions[d]}",
            span,
            [coughs[d].get(x, 0.0) / 24.0 / pigs_each * 100.0 for x in span],
        )
        for d in monitors
    ]
    score_series = [
        Series(f"monitor {positions[d]}", span, [scores[d].get(x) for x in span]) for d in monitors
    ]
    template = fleet.templates[int(rooms.template[room])]
    ages = [a for a, _ in template.climate.setpoint]
    setpoints = [c for _, c in template.climate.setpoint]
    temp_series = [
        Series(
            "room (daily mean)",
            span,
            [float(np.mean(temps[x])) if temps[x] else None for x in span],
        ),
        Series(
            "setpoint",
            span,
            [
                float(np.interp(x, ages, setpoints)) if 0 <= x < rooms.batch_days[room] else None
                for x in span
            ],
            color="#999999",
        ),
    ]
    width = 760
    charts = [
        line_chart(
            cough_series,
            title=f"{room_id}: coughs per 100 pigs per hour (outbreak injected at day 35)",
            y_label="coughs/100 pigs/h",
            top=0,
        ),
        line_chart(
            score_series,
            title="Respiratory health score (null while collecting data)",
            y_label="rehs",
            y_range=(0, 100),
            top=230,
            bands=((60, 100, "#2e9e44"), (40, 60, "#e6b800"), (0, 40, "#d1495b")),
        ),
        line_chart(
            temp_series,
            title="Temperature: setpoint by batch age, the weather on top",
            y_label="°C",
            x_label="days since placement",
            top=460,
        ),
    ]
    OUT.write_text(svg_document(charts, width, 690))
    print(f"wrote {OUT} ({room_id}, {len(monitors)} monitors, {len(transport.kept):,} messages)")


if __name__ == "__main__":
    main()
