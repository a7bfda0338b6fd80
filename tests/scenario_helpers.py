"""Running a fleet with a scenario in process, for tests (virtual clock, memory transport)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from simulator.engine.clock import VirtualClock
from simulator.engine.engine import Engine
from simulator.engine.scenarios import load_scenario
from simulator.fleet.load import load_fleet
from simulator.metrics.metrics import Metrics
from simulator.transports.memory import MemoryTransport
from simulator.units import parse_instant
from tests.helpers import ROOT


def run_scenario(
    name: str | None,
    *,
    farms: int = 4,
    start: str = "2026-07-01",
    duration: float = 86400.0,
    device_types: list[str] | None = None,
    realistic: bool = True,
    clean: bool = True,
    seed: int = 5,
    profiles_dir: Path | None = None,
) -> tuple[Engine, list[dict[str, Any]], Metrics]:
    """Run ``scenarios/<name>.toml`` and return the engine, every payload in send order
    (malformed ones as {"_raw": bytes}) and the metrics."""
    fleet, profiles = load_fleet(farms, seed, None, profiles_dir)
    scenario = load_scenario(ROOT / "scenarios" / f"{name}.toml") if name else None
    metrics = Metrics(fleet.devices.type_names)
    transport = MemoryTransport(metrics)
    at = parse_instant(start)
    engine = Engine(
        fleet,
        profiles,
        transport,
        VirtualClock(at),
        start=at,
        duration=duration,
        seed=seed,
        topic_template="t/{device_id}/{kind}",
        device_types=device_types,
        scenario=scenario,
        realistic=realistic,
        clean=clean,
    )

    async def go() -> None:
        async with transport:
            await engine.run(asyncio.Event())

    asyncio.run(go())
    payloads: list[dict[str, Any]] = []
    for message in transport.messages:
        try:
            payload = orjson.loads(message.payload)
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            payload = {"_raw": message.payload}
        payload["_flags"] = message.flags
        payloads.append(payload)
    return engine, payloads, metrics
