"""Farm templates: the layouts from which ``--farms N`` expands a fleet.

A template (``farms/*.toml``) describes one kind of farm: where such farms are (a Faker
locale and country), how many sites, rooms, pens and pigs they have, how their batches
run, how the barn climate behaves, and which devices each room and site carries.
See ``farms/eu_finisher.toml`` for a commented example.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from simulator.errors import ConfigError
from simulator.resources import shipped
from simulator.tomlfile import Table

STAGES = ("nursery", "finisher", "wean_to_finish")
DEFAULT_FARMS_DIR = shipped("farms")


@dataclass(frozen=True)
class DeviceRule:
    """How many devices of one type a room (or a site, for gateways) carries."""

    device_type: str
    per: str  # "room" or "site"
    count: tuple[int, int]
    #: position labels by layout; when given, one layout is drawn per room and its length
    #: is the device count (e.g. 3 monitors at E, C, W or 5 at EE, EC, C, WC, WW).
    layouts: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class ClimateSpec:
    """The barn climate a room's sensors read, before sensor offsets and noise."""

    #: (batch age in days, setpoint °C) points, interpolated linearly.
    setpoint: tuple[tuple[float, float], ...]
    diurnal_amplitude_c: float
    peak_hour: float
    empty_c: float
    rh_pct: tuple[float, float]
    #: humidity range in summer (rh_pct is winter's); humidity moves between them.
    rh_summer_pct: tuple[float, float] = (40.0, 65.0)
    #: how much warmer than outdoors a stocked barn runs when it is hot outside.
    heat_gain_c: float = 2.5

    @property
    def rh_mid(self) -> float:
        """Relative humidity (%) at the setpoint in winter: the middle of its range."""
        return (self.rh_pct[0] + self.rh_pct[1]) / 2.0

    @property
    def rh_summer_mid(self) -> float:
        return (self.rh_summer_pct[0] + self.rh_summer_pct[1]) / 2.0


#: Episode shapes (``[health]`` keys, each a ``[low, high]`` range one episode draws from),
#: after REALISM.md: acute (influenza-like) episodes peak at 3–10x within days and recover
#: within days, passing through mild levels on the way down (an exponential return with a
#: time constant of 1.5–3 days: half the peak's excess gone within 1–2 days); chronic
#: (mycoplasma-like) ones ramp over 2–4 weeks to 2–4x in part of the pens and hold for
#: weeks, waxing and waning with a period of one to two weeks (pens take turns coughing,
#: treatment and ventilation changes) instead of sitting at their peak.
EPISODE_RANGES: dict[str, tuple[float, float]] = {
    "acute_peak": (3.0, 10.0),  # times the healthy cough rate [src]
    "acute_peak_day": (1.0, 3.0),  # days from first coughs to the peak [src: day 3–5 of
    # the episode, 1–2 silent days included]
    "acute_recovery_days": (1.5, 3.0),  # time constant of the return [est]
    "chronic_peak": (2.0, 4.0),  # [src]
    "chronic_ramp_days": (14.0, 28.0),  # [src]
    "chronic_hold_days": (14.0, 42.0),  # [src: "holds for weeks"]
    "chronic_wave_days": (7.0, 14.0),  # period of the waxing and waning [est]
    "chronic_wave_depth": (0.5, 0.9),  # share of the excess a trough gives back [est]
}


@dataclass(frozen=True)
class HealthSpec:
    """A farm template's disease pressure and episode shapes (``[health]``)."""

    outbreaks_per_year: float = 3.5  # per monitor and year of a stocked room
    acute_share: float = 0.7
    reach: float = 0.85  # chance an episode reaches a given monitor of its room
    max_lag_days: float = 3.0
    risk_weeks: tuple[float, float] = (3.0, 9.0)
    in_risk_weeks: float = 0.75  # share of onsets inside risk_weeks
    #: the ranges of EPISODE_RANGES, as this template sets them.
    shapes: tuple[tuple[str, tuple[float, float]], ...] = tuple(EPISODE_RANGES.items())

    def shape(self, name: str) -> tuple[float, float]:
        return dict(self.shapes)[name]

    @property
    def first_risk_day(self) -> float:
        """Days after placement that the risk weeks begin."""
        return self.risk_weeks[0] * 7.0

    @property
    def last_risk_day(self) -> float:
        """Days after placement that the risk weeks end."""
        return self.risk_weeks[1] * 7.0

    @classmethod
    def load(cls, table: Table) -> HealthSpec:
        table.check_keys(
            {
                "outbreaks_per_year",
                "acute_share",
                "reach",
                "max_lag_days",
                "risk_weeks",
                "in_risk_weeks",
                *EPISODE_RANGES,
            }
        )
        weeks = table.number_list("risk_weeks", [3.0, 9.0])
        if len(weeks) != 2 or not 0 <= weeks[0] < weeks[1]:
            raise table.error("risk_weeks", "expected [first_week, last_week], first < last")
        shapes = []
        for name, default in EPISODE_RANGES.items():
            pair = table.number_list(name, list(default))
            if len(pair) != 2 or not 0 <= pair[0] <= pair[1]:
                raise table.error(name, "expected [low, high] with 0 <= low <= high")
            shapes.append((name, (pair[0], pair[1])))
        return cls(
            outbreaks_per_year=table.number("outbreaks_per_year", 3.5, min=0.0, max=50.0),
            acute_share=table.number("acute_share", 0.7, min=0.0, max=1.0),
            reach=table.number("reach", 0.85, min=0.01, max=1.0),
            max_lag_days=table.number("max_lag_days", 3.0, min=0.0),
            risk_weeks=(weeks[0], weeks[1]),
            in_risk_weeks=table.number("in_risk_weeks", 0.75, min=0.0, max=1.0),
            shapes=tuple(shapes),
        )


@dataclass(frozen=True)
class FarmTemplate:
    """One kind of farm, loaded and validated from a TOML file."""

    name: str
    source: str
    weight: float
    locale: str
    country: str
    sites: tuple[int, int]
    rooms_per_site: tuple[int, int]
    pens_per_room: tuple[int, int]
    pigs_per_pen: tuple[int, int]
    stage: str
    batch_days: tuple[int, int]
    empty_days: tuple[int, int]
    climate: ClimateSpec
    devices: tuple[DeviceRule, ...]
    health: HealthSpec = field(default_factory=HealthSpec)


def load_template(file: Path) -> FarmTemplate:
    """Load one farm template, raising :class:`ConfigError` that names file and key."""
    root = Table.load(file)
    root.check_keys(
        {
            "name",
            "weight",
            "locale",
            "country",
            "layout",
            "production",
            "climate",
            "devices",
            "health",
        }
    )
    layout = root.table("layout")
    layout.check_keys({"sites", "rooms_per_site", "pens_per_room", "pigs_per_pen"})
    production = root.table("production")
    production.check_keys({"stage", "batch_days", "empty_days"})
    stage = production.string("stage")
    if stage not in STAGES:
        raise production.error("stage", f'"{stage}" is not one of {", ".join(STAGES)}')
    return FarmTemplate(
        name=root.string("name"),
        source=str(file),
        weight=root.number("weight", 1.0, min=0.0),
        locale=_locale(root),
        country=root.string("country", "US"),
        sites=layout.int_range("sites", min=1, max=100),
        rooms_per_site=layout.int_range("rooms_per_site", min=1, max=200),
        pens_per_room=layout.int_range("pens_per_room", min=1, max=500),
        pigs_per_pen=layout.int_range("pigs_per_pen", min=1, max=5_000),
        stage=stage,
        batch_days=production.int_range("batch_days", min=1, max=3_650),
        empty_days=production.int_range("empty_days", min=0, max=365),
        climate=_load_climate(root.table("climate")),
        devices=_load_devices(root.table("devices")),
        health=HealthSpec.load(root.table("health", required=False)),
    )


def _load_climate(table: Table) -> ClimateSpec:
    table.check_keys(
        {
            "setpoint",
            "diurnal_amplitude_c",
            "peak_hour",
            "empty_c",
            "rh_pct",
            "rh_summer_pct",
            "heat_gain_c",
        }
    )
    points = table.raw("setpoint")
    if (
        not isinstance(points, list)
        or not points
        or not all(
            isinstance(p, list)
            and len(p) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in p)
            for p in points
        )
    ):
        raise table.error("setpoint", "expected a list of [age_days, celsius] pairs")
    ages = [float(p[0]) for p in points]
    if ages != sorted(ages):
        raise table.error("setpoint", "ages must increase")
    rh = _percent_range(table, "rh_pct", [60.0, 80.0])
    rh_summer = _percent_range(table, "rh_summer_pct", [40.0, 65.0])
    return ClimateSpec(
        setpoint=tuple((float(a), float(c)) for a, c in points),
        diurnal_amplitude_c=table.number("diurnal_amplitude_c", 1.0, min=0.0),
        peak_hour=table.number("peak_hour", 15.0, min=0.0, max=24.0),
        empty_c=table.number("empty_c", 13.0),
        rh_pct=(rh[0], rh[1]),
        rh_summer_pct=(rh_summer[0], rh_summer[1]),
        heat_gain_c=table.number("heat_gain_c", 2.5, min=0.0, max=10.0),
    )


def _percent_range(table: Table, key: str, default: list[float]) -> list[float]:
    values = table.number_list(key, default)
    if len(values) != 2 or not 0 <= values[0] <= values[1] <= 100:
        raise table.error(key, "expected [low, high] with 0 <= low <= high <= 100")
    return values


def _load_devices(table: Table) -> tuple[DeviceRule, ...]:
    rules = []
    for device_type in table:
        rule = table.table(device_type)
        rule.check_keys({"per_room", "per_site", "layouts"})
        if ("per_room" in rule) == ("per_site" in rule):
            raise rule.error(None, "give exactly one of per_room or per_site")
        per = "room" if "per_room" in rule else "site"
        layouts: tuple[tuple[str, ...], ...] = ()
        if "layouts" in rule:
            raw = rule.raw("layouts")
            if (
                not isinstance(raw, list)
                or not raw
                or not all(
                    isinstance(layout, list) and layout and all(isinstance(p, str) for p in layout)
                    for layout in raw
                )
            ):
                raise rule.error("layouts", "expected a list of lists of position labels")
            layouts = tuple(tuple(layout) for layout in raw)
        count = rule.int_range(f"per_{per}", min=0, max=100)
        if layouts and not all(count[0] <= len(lay) <= count[1] for lay in layouts):
            raise rule.error("layouts", f"every layout must hold {count[0]}..{count[1]} positions")
        rules.append(DeviceRule(device_type, per, count, layouts))
    if not rules:
        raise table.error(None, "no devices: a farm needs at least one device type")
    return tuple(rules)


def load_templates(directory: Path | None = None) -> list[FarmTemplate]:
    """Every ``*.toml`` template in ``directory`` (default: the shipped ``farms/``)."""
    folder = directory or DEFAULT_FARMS_DIR
    if not folder.is_dir():
        raise ConfigError(str(folder), "not a directory of farm templates")
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise ConfigError(str(folder), "holds no *.toml farm templates")
    templates = [load_template(file) for file in files]
    if sum(t.weight for t in templates) <= 0:
        raise ConfigError(str(folder), "every template has weight 0")
    return templates


def _locale(root: Table) -> str:
    """The template's Faker locale, checked now (Faker fails late and obscurely)."""
    from faker.config import AVAILABLE_LOCALES

    locale = root.string("locale", "en_US")
    if locale not in AVAILABLE_LOCALES:
        raise root.error("locale", f'"{locale}" is not a locale Faker knows, e.g. "nl_NL"')
    return locale
