"""Barn climate as the sensors read it.

The room climate itself belongs to the barn (the farm template's ``[climate]`` table):
a setpoint that follows the batch's age, a daily cycle peaking mid-afternoon, and a
slow room-specific wander; an empty room drifts towards ``empty_c``. Every sensor in
a room reads that same climate, so a cough monitor's thermometers and the room's climate
node agree, each with its own fixed offset and noise. Events shift or scale the climate
through the latent names ``room_temperature`` and ``setpoint``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simulator.arrays import SECONDS_PER_DAY, FloatArray, IntArray, Values
from simulator.models.base import Batch, SignalModel, per_device, register
from simulator.tomlfile import Table

if TYPE_CHECKING:
    from simulator.fleet.tables import Fleet

_TWO_PI = 2.0 * np.pi


def setpoint(batch: Batch) -> FloatArray:
    """The climate controller's target for each device's room, by batch age."""

    def compute() -> FloatArray:
        fleet = batch.fleet
        age = batch.batch_age_days()
        templates = fleet.rooms.template[np.maximum(batch.rooms, 0)]
        result = np.empty(len(batch), np.float64)
        for code in np.unique(templates):
            climate = fleet.templates[int(code)].climate
            mask = templates == code
            ages = [a for a, _ in climate.setpoint]
            temps = [c for _, c in climate.setpoint]
            result[mask] = np.where(
                batch.occupied()[mask], np.interp(age[mask], ages, temps), climate.empty_c
            )
        return batch.modulate("setpoint", result)

    return batch.cached("setpoint", compute)


def _template_value(batch: Batch, attribute: str) -> FloatArray:
    fleet = batch.fleet
    templates = fleet.rooms.template[np.maximum(batch.rooms, 0)]
    table = np.array([getattr(t.climate, attribute) for t in fleet.templates], np.float64)
    return np.asarray(table[templates], np.float64)


def outdoor_temperature(batch: Batch) -> FloatArray | None:
    """The weather outside each device's barn, when the run has weather."""
    return batch.context.weather.outdoor(batch) if batch.context is not None else None


def room_temperature(batch: Batch) -> FloatArray:
    """Air temperature of each device's room.

    A stocked room follows its setpoint with a daily cycle and a slow room-specific
    wander; when it is hot outside it runs ``heat_gain_c`` above outdoors instead. An
    empty room sits near ``empty_c``, drifting with the outdoor temperature.
    """

    def compute() -> FloatArray:
        hour = batch.local_hour()
        amplitude = _template_value(batch, "diurnal_amplitude_c")
        peak = _template_value(batch, "peak_hour")
        daily = amplitude * np.cos(_TWO_PI * (hour - peak) / 24.0)
        # A smooth, stateless wander of about ±0.4 °C over a few days, different per room.
        room = np.maximum(batch.rooms, 0).astype(np.float64)
        days = batch.times / SECONDS_PER_DAY
        wander = 0.25 * np.sin(_TWO_PI * days / 2.7 + room * 1.7) + 0.15 * np.sin(
            _TWO_PI * days / 6.1 + room * 0.61
        )
        controlled = setpoint(batch) + daily + wander
        outdoor = outdoor_temperature(batch)
        if outdoor is not None:
            gain = _template_value(batch, "heat_gain_c")
            empty = _template_value(batch, "empty_c")
            stocked = np.maximum(controlled, outdoor + gain + wander)
            # Washed and idle, a room lags the weather: 11–14 °C in a mild winter.
            drifting = empty + 0.3 * (outdoor - 8.0) + wander
            controlled = np.where(batch.occupied(), stocked, drifting)
        return batch.modulate("room_temperature", controlled)

    return batch.cached("room_temperature", compute)


class _Sensor(SignalModel):
    """A sensor with a fixed per-device offset and per-reading noise."""

    params = frozenset({"offset_sd", "noise_sd"})

    def __init__(self, table: Table) -> None:
        super().__init__(table)
        self.offset_sd = table.number("offset_sd", 0.0, min=0.0)
        self.noise_sd = table.number("noise_sd", 0.0, min=0.0)
        self.offset = np.zeros(0)

    def bind(self, fleet: Fleet, devices: IntArray, rng: np.random.Generator) -> None:
        self.offset = per_device(fleet, devices, rng.normal(0.0, self.offset_sd, len(devices)))

    def read(self, batch: Batch, truth: FloatArray) -> FloatArray:
        noise = batch.rng.normal(0.0, self.noise_sd, len(batch))
        return np.asarray(truth + self.offset[batch.devices] + noise, np.float64)


@register("room_temperature")
class RoomTemperature(_Sensor):
    """The room's air temperature as one thermometer reads it (°C)."""

    sensor = True

    def generate(self, batch: Batch) -> Values:
        return self.read(batch, room_temperature(batch))


@register("daily_mean_temperature")
class DailyMeanTemperature(_Sensor):
    """The mean of a day of readings: the setpoint plus the sensor's offset (°C)."""

    def generate(self, batch: Batch) -> Values:
        return self.read(batch, setpoint(batch))


@register("room_humidity")
class RoomHumidity(_Sensor):
    """Relative humidity (%), moving against temperature within the template's range."""

    sensor = True

    params = _Sensor.params | {"per_degree"}

    def __init__(self, table: Table) -> None:
        super().__init__(table)
        self.per_degree = table.number("per_degree", 2.5, min=0.0)

    def generate(self, batch: Batch) -> Values:
        rh = _template_value(batch, "rh_mid")
        outdoor = outdoor_temperature(batch)
        if outdoor is not None:
            # Winter's range when it is freezing outside, summer's from 25 °C.
            summer = np.clip(outdoor / 25.0, 0.0, 1.0)
            rh = rh + summer * (_template_value(batch, "rh_summer_mid") - rh)
        deviation = room_temperature(batch) - setpoint(batch)
        humidity = np.asarray(rh, np.float64) - self.per_degree * deviation
        return np.clip(self.read(batch, humidity), 5.0, 100.0)


def ventilation(batch: Batch, low: float, high: float, gain: float) -> FloatArray:
    """Ventilation rate (%): the controller opens up as the room warms past its setpoint."""

    def compute() -> FloatArray:
        deviation = room_temperature(batch) - setpoint(batch)
        rate = np.clip(low + (high - low) * 0.3 + gain * deviation, low, high)
        return batch.modulate("ventilation", rate)

    return batch.cached("ventilation", compute)


class _Ventilated(SignalModel):
    params = frozenset({"min_pct", "max_pct", "gain_pct_per_c", "noise_sd"})

    def __init__(self, table: Table) -> None:
        super().__init__(table)
        self.low = table.number("min_pct", 10.0, min=0.0, max=100.0)
        self.high = table.number("max_pct", 100.0, min=0.0, max=100.0)
        self.gain = table.number("gain_pct_per_c", 15.0, min=0.0)
        self.noise_sd = table.number("noise_sd", 0.0, min=0.0)
        if self.low > self.high:
            raise table.error("min_pct", "is greater than max_pct")

    def vent(self, batch: Batch) -> FloatArray:
        return ventilation(batch, self.low, self.high, self.gain)


@register("ventilation")
class Ventilation(_Ventilated):
    """Ventilation rate in % of capacity."""

    sensor = True

    def generate(self, batch: Batch) -> Values:
        return np.clip(self.vent(batch) + batch.rng.normal(0, self.noise_sd, len(batch)), 0, 100)


@register("co2")
class Co2(_Ventilated):
    """CO2 (ppm): outdoor level when empty or fully ventilated, up to ``high_ppm``."""

    sensor = True

    params = _Ventilated.params | {"outdoor_ppm", "high_ppm"}

    def __init__(self, table: Table) -> None:
        super().__init__(table)
        self.outdoor = table.number("outdoor_ppm", 450.0, min=0.0)
        self.peak = table.number("high_ppm", 3000.0, min=0.0)

    def generate(self, batch: Batch) -> Values:
        closed = 1.0 - self.vent(batch) / 100.0
        stocked = np.where(batch.occupied(), 1.0, 0.05)
        ppm = self.outdoor + (self.peak - self.outdoor) * closed**1.5 * stocked
        noise = batch.rng.normal(0.0, self.noise_sd, len(batch))
        return np.maximum(batch.modulate("co2", ppm) + noise, 0.0)


@register("nh3")
class Nh3(_Ventilated):
    """Ammonia (ppm), higher with less ventilation and at night."""

    sensor = True

    params = _Ventilated.params | {"low_ppm", "high_ppm", "night_factor"}

    def __init__(self, table: Table) -> None:
        super().__init__(table)
        self.low_ppm = table.number("low_ppm", 3.0, min=0.0)
        self.high_ppm = table.number("high_ppm", 20.0, min=0.0)
        self.night = table.number("night_factor", 0.3, min=0.0)

    def generate(self, batch: Batch) -> Values:
        closed = 1.0 - self.vent(batch) / 100.0
        night = 1.0 + self.night * np.cos(_TWO_PI * (batch.local_hour() - 3.0) / 24.0)
        stocked = np.where(batch.occupied(), 1.0, 0.1)
        ppm = (self.low_ppm + (self.high_ppm - self.low_ppm) * closed) * night * stocked
        noise = batch.rng.normal(0.0, self.noise_sd, len(batch))
        return np.maximum(batch.modulate("nh3", ppm) + noise, 0.0)


@register("heater")
class Heater(SignalModel):
    """Whether the heater runs: the room is below its setpoint by more than ``hysteresis_c``."""

    output = "b"
    params = frozenset({"hysteresis_c"})

    def __init__(self, table: Table) -> None:
        super().__init__(table)
        self.hysteresis = table.number("hysteresis_c", 0.5, min=0.0)

    def generate(self, batch: Batch) -> Values:
        return np.asarray(room_temperature(batch) < setpoint(batch) - self.hysteresis)


@register("temperature_swing_band")
class TemperatureSwingBand(SignalModel):
    """A colour for the day's temperature swing: green, yellow from ``yellow_c``, red ``red_c``."""

    output = "U"
    params = frozenset({"yellow_c", "red_c", "spread"})

    def __init__(self, table: Table) -> None:
        super().__init__(table)
        self.yellow = table.number("yellow_c", 4.0, min=0.0)
        self.red = table.number("red_c", 6.0, min=0.0)
        self.spread = table.number("spread", 0.3, min=0.0)
        if self.yellow > self.red:
            raise table.error("yellow_c", "is greater than red_c")

    def generate(self, batch: Batch) -> Values:
        amplitude = _template_value(batch, "diurnal_amplitude_c")
        swing = 2.0 * amplitude * batch.rng.lognormal(0.0, self.spread, len(batch))
        swing = batch.modulate("temperature_swing", swing)
        return np.where(swing >= self.red, "red", np.where(swing >= self.yellow, "yellow", "green"))
