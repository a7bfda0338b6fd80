"""How big a run will be, said before it starts: devices, messages, the memory the fleet
and its connections take, and the bytes a history run writes. A run that cannot fit in
this machine's memory is refused with the figures; a large one says what it will take.

The estimate scales a sample of the fleet (its first farms, built from the same templates
and profiles) to the whole: farms are drawn from the templates independently, so a sample
of a few dozen farms gives the fleet's devices and message rate to within a few percent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from simulator.errors import ConfigError
from simulator.fleet.load import load_fleet
from simulator.runner.config import RunConfig
from simulator.transports.file import history_format
from simulator.units import format_duration

#: farms built to estimate a larger fleet.
SAMPLE_FARMS = 24
#: bytes of memory per device: the fleet's arrays, schedules and books (measured: about
#: 400 B for the fleet alone at 5,000 farms; a run's schedules and counters add the rest).
BYTES_PER_DEVICE = 2_000
#: bytes of memory per MQTT connection of barnstorm's own client (benchmarks: ~12 KB).
BYTES_PER_CONNECTION = 12_000
#: a history line's bytes on average (topic, envelope and payload: 358 in a year of 12 farms).
BYTES_PER_LINE = 360
#: sizes from which a run says what it will take before it starts.
LARGE_MEMORY = 1 << 30
LARGE_OUTPUT = 1 << 30


#: how much smaller than JSON lines a history is in each format (measured on a month of
#: 12 farms: gzip level 1 6.9x, Parquet with zstd 20x).
SMALLER = {"jsonl.gz": 6.9, "parquet": 20.0}


@dataclass(frozen=True)
class Estimate:
    devices: int
    messages: int
    memory: int
    output: int  # bytes a history file gets (0: not a history run)


def estimate(config: RunConfig) -> Estimate:
    """The run's size, from a sample of its fleet scaled to the whole."""
    fleet_config = config.fleet
    sample_farms = min(fleet_config.farms, SAMPLE_FARMS)
    sample, profiles = load_fleet(
        sample_farms,
        fleet_config.seed,
        fleet_config.farms_dir,
        fleet_config.profiles_dir,
        fleet_config.device_types,
    )
    scale = fleet_config.farms / sample_farms
    devices = round(sample.devices.count * scale)
    per_day = 0.0
    for code, name in enumerate(sample.devices.type_names):
        if fleet_config.device_types and name not in fleet_config.device_types:
            continue
        count = int((sample.devices.type == code).sum())
        kinds = profiles[name].messages
        for kind, spec in kinds.items():
            if fleet_config.kinds is None or kind in fleet_config.kinds:
                per_day += count * 86400.0 / spec.interval
    messages = round(per_day * scale * config.timing.duration / 86400.0)
    memory = devices * BYTES_PER_DEVICE
    if config.target.mqtt is not None:
        memory += devices * BYTES_PER_CONNECTION
    output = config.target.output
    per_message = 0.0
    if output is not None:  # gzip takes JSON lines of a fleet to about a seventh
        per_message = BYTES_PER_LINE / SMALLER.get(history_format(output), 1.0)
    return Estimate(devices, messages, memory, round(messages * per_message))


def available_memory() -> int | None:
    """Bytes of memory this machine can still give (Linux), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


#: devices per farm no template exceeds by much (the shipped ones average 28).
_DEVICES_PER_FARM_BOUND = 60


def check_size(config: RunConfig) -> list[str]:
    """Refuse a run that cannot fit in memory; lines to print before a large one. A small
    live run is not sampled (it could not be large)."""
    bound = config.fleet.farms * _DEVICES_PER_FARM_BOUND * (BYTES_PER_DEVICE + BYTES_PER_CONNECTION)
    if config.target.output is None and bound < LARGE_MEMORY // 2:
        return []
    size = estimate(config)
    free = available_memory()
    if free is not None and size.memory > free:
        raise ConfigError(
            "--farms",
            f"{config.fleet.farms:,} farms are about {size.devices:,} devices, about "
            f"{_bytes(size.memory)} of memory; this machine has {_bytes(free)} free: give "
            "fewer farms, or --processes over several machines (simulate mixed --processes)",
        )
    lines = []
    if size.memory > LARGE_MEMORY:
        lines.append(
            f"size: about {size.devices:,} devices and {_bytes(size.memory)} of memory "
            f"({_bytes(free) + ' free' if free is not None else 'free memory unknown'})"
        )
    if size.output > LARGE_OUTPUT or (size.output and config.outputs.live):
        lines.append(
            f"size: about {size.messages:,} messages over "
            f"{format_duration(config.timing.duration)}, about {_bytes(size.output)} to "
            f"{config.target.output}"
        )
    if size.output:
        _check_disk(config, size)
    return lines


def _check_disk(config: RunConfig, size: Estimate) -> None:
    output = config.target.output
    assert output is not None
    try:
        stats = os.statvfs(output.parent.resolve())
    except OSError:
        return
    free = stats.f_bavail * stats.f_frsize
    if size.output > free:
        raise ConfigError(
            "--output",
            f"about {_bytes(size.output)} of history for {output}, but its disk has "
            f"{_bytes(free)} free: give fewer farms, a shorter --duration or --kinds",
        )


def _bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:,.0f} {unit}" if unit == "B" else f"{count:,.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")
