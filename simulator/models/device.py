"""Models of the device itself: radio signal, uptime, what a gateway sees."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simulator.arrays import IntArray, Values
from simulator.models.base import Batch, SignalModel, per_device, register
from simulator.tomlfile import Table

if TYPE_CHECKING:
    from simulator.fleet.tables import Fleet


@register("rssi")
class Rssi(SignalModel):
    """Received signal strength (dBm): a fixed level per device drawn from ``range``, plus noise."""

    output = "i"
    params = frozenset({"range", "noise_sd"})

    def __init__(self, table: Table) -> None:
        super().__init__(table)
        bounds = table.number_list("range", [-95.0, -60.0])
        if len(bounds) != 2 or bounds[0] > bounds[1]:
            raise table.error("range", "expected [low, high] dBm with low <= high")
        self.bounds = (bounds[0], bounds[1])
        self.noise_sd = table.number("noise_sd", 2.0, min=0.0)
        self.level = np.zeros(0)

    def bind(self, fleet: Fleet, devices: IntArray, rng: np.random.Generator) -> None:
        self.level = per_device(fleet, devices, rng.uniform(*self.bounds, len(devices)))

    def generate(self, batch: Batch) -> Values:
        return np.round(self.level[batch.devices] + batch.rng.normal(0, self.noise_sd, len(batch)))


@register("uptime")
class Uptime(SignalModel):
    """Seconds since the device last booted; devices reboot every ``reboot_days`` [low, high]."""

    output = "i"
    params = frozenset({"reboot_days"})

    def __init__(self, table: Table) -> None:
        super().__init__(table)
        days = table.number_list("reboot_days", [7.0, 60.0])
        if len(days) != 2 or not 0 < days[0] <= days[1]:
            raise table.error("reboot_days", "expected [low, high] days with 0 < low <= high")
        self.days = (days[0], days[1])
        self.period = np.ones(0)
        self.phase = np.zeros(0)

    def bind(self, fleet: Fleet, devices: IntArray, rng: np.random.Generator) -> None:
        period = rng.uniform(*self.days, len(devices)) * 86400.0
        self.period = per_device(fleet, devices, period)
        self.period[self.period == 0] = 1.0
        self.phase = per_device(fleet, devices, rng.uniform(0.0, 1.0, len(devices)) * period)

    def generate(self, batch: Batch) -> Values:
        period = self.period[batch.devices]
        return np.floor(np.mod(batch.times + self.phase[batch.devices], period))


@register("site_devices")
class SiteDevices(SignalModel):
    """How many other devices share the gateway's site (those it relays for)."""

    output = "i"

    def __init__(self, table: Table) -> None:
        super().__init__(table)
        self.counts = np.zeros(0)

    def bind(self, fleet: Fleet, devices: IntArray, rng: np.random.Generator) -> None:
        per_site = np.bincount(fleet.devices.site, minlength=len(fleet.site_ids))
        self.counts = (per_site[fleet.devices.site] - 1).astype(np.float64)

    def generate(self, batch: Batch) -> Values:
        return batch.modulate("connected_devices", self.counts[batch.devices])
