"""Device profiles: what a device type sends, as data (``device_profiles/*.toml``).

A profile names the device type, its firmware mix and its message kinds. Each kind has a
schedule (``every = "15m"``, or ``daily_at = "00:00"`` in the farm's local time), a send
jitter and an ordered table of fields, each produced by a signal model registered by
name (:mod:`simulator.models`). Adding a device type is one TOML file; adding a signal
model is one class and one registry entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from simulator.errors import ConfigError
from simulator.fleet.imperfections import FirmwareVariant, Imperfections
from simulator.models import SignalModel, model_class
from simulator.resources import shipped
from simulator.tomlfile import Table

DEFAULT_PROFILES_DIR = shipped("device_profiles")
ENVELOPE = ("device_id", "device_type", "farm_id", "room_id", "fw", "seq", "ts", "kind")


@dataclass(frozen=True)
class FieldSpec:
    """One payload field: the model that makes it and how it is written."""

    name: str
    model: type[SignalModel]
    params: Table
    #: digits after the decimal point for floats (None: as computed).
    decimals: int | None

    def instantiate(self) -> SignalModel:
        return self.model(self.params)


@dataclass(frozen=True)
class MessageSpec:
    """One kind of message a device sends (``summary``, ``daily``, ``heartbeat``)."""

    kind: str
    #: seconds between two messages of one device.
    interval: float
    #: seconds after local midnight for daily messages, None for plain intervals.
    daily_at: float | None
    #: send jitter, as a fraction of the interval (uniform ±).
    jitter: float
    fields: tuple[FieldSpec, ...]


@dataclass(frozen=True)
class DeviceProfile:
    """A device type, loaded and validated from its TOML file."""

    device_type: str
    id_prefix: str
    source: str
    description: str
    #: (versions, shares): the fleet's firmware mix for this type.
    firmware: tuple[tuple[str, ...], tuple[float, ...]]
    messages: dict[str, MessageSpec]
    #: payload differences of some firmware versions from the fields above.
    variants: dict[str, FirmwareVariant] = field(default_factory=dict)
    imperfections: Imperfections = field(default_factory=Imperfections)
    #: messages a device keeps while offline (the oldest are dropped past it).
    buffer_messages: int = 1000
    #: buffered messages a device sends per simulated minute once back online.
    backfill_per_minute: float = 60.0

    def clean(self) -> DeviceProfile:
        """This profile with every imperfection off: no jitter, drift, duplicates, spikes,
        stuck sensors, missing fields or firmware payload differences."""
        messages = {kind: replace(spec, jitter=0.0) for kind, spec in self.messages.items()}
        return replace(self, messages=messages, variants={}, imperfections=Imperfections())


def load_profile(file: Path) -> DeviceProfile:
    """Load one profile, raising :class:`ConfigError` that names the file and key."""
    root = Table.load(file)
    root.check_keys(
        {
            "device_type",
            "id_prefix",
            "description",
            "firmware",
            "messages",
            "imperfections",
            "buffer",
        }
    )
    device_type = root.string("device_type")
    if not device_type.isidentifier():
        raise root.error(
            "device_type", f'"{device_type}" is not a simple name (letters, digits, _)'
        )
    firmware = root.table("firmware")
    firmware.check_keys({"versions", "shares", "variants"})
    versions = firmware.string_list("versions")
    shares = firmware.number_list("shares", [1.0] * len(versions))
    if len(shares) != len(versions) or any(s < 0 for s in shares) or sum(shares) <= 0:
        raise firmware.error("shares", "expected one non-negative share per version")
    total = sum(shares)
    messages_table = root.table("messages")
    messages = {kind: _load_message(messages_table.table(kind), kind) for kind in messages_table}
    if not messages:
        raise messages_table.error(None, "no message kinds: a profile needs at least one")
    field_names = {f.name for spec in messages.values() for f in spec.fields}
    variants_table = firmware.table("variants", required=False)
    variants = {}
    for version in variants_table:
        if version not in versions:
            raise variants_table.error(version, f"is not one of the versions {', '.join(versions)}")
        variants[version] = FirmwareVariant.load(variants_table.table(version), field_names)
    buffer = root.table("buffer", required=False)
    buffer.check_keys({"max_messages", "backfill_per_minute"})
    return DeviceProfile(
        device_type=device_type,
        id_prefix=root.string("id_prefix", device_type[:2]),
        source=str(file),
        description=root.string("description", device_type),
        firmware=(tuple(versions), tuple(s / total for s in shares)),
        messages=messages,
        variants=variants,
        imperfections=Imperfections.load(root.table("imperfections", required=False)),
        buffer_messages=buffer.integer("max_messages", 1000, min=0),
        backfill_per_minute=buffer.number("backfill_per_minute", 60.0, min=0.001),
    )


def _load_message(table: Table, kind: str) -> MessageSpec:
    table.check_keys({"every", "daily_at", "jitter", "fields"})
    if ("every" in table) == ("daily_at" in table):
        raise table.error(None, 'give exactly one of every = "15m" or daily_at = "00:00"')
    daily_at: float | None = None
    if "daily_at" in table:
        daily_at = _clock_time(table, "daily_at")
        interval = 86400.0
    else:
        interval = table.duration("every")
    fields_table = table.table("fields")
    fields: list[FieldSpec] = []
    for name in fields_table:
        if name in ENVELOPE:
            raise fields_table.error(name, "is an envelope field and cannot be redefined")
        spec = fields_table.table(name)
        model_name = spec.string("model")
        model = model_class(model_name, spec, "model")
        # Past 12 decimals a float64 reading has no digits left to keep.
        decimals = spec.integer("decimals", min=0, max=12) if "decimals" in spec else None
        if model.output == "i":
            decimals = 0  # integer fields are written as integers whatever the profile says
        field_spec = FieldSpec(name, model, spec, decimals)
        instance = field_spec.instantiate()  # validates the parameters now, not mid-run
        for source in instance.depends_on:
            if source not in {f.name for f in fields}:
                raise spec.error("source", f'"{source}" is not a field defined above "{name}"')
        fields.append(field_spec)
    if not fields:
        raise fields_table.error(None, "no fields")
    return MessageSpec(
        kind=kind,
        interval=interval,
        daily_at=daily_at,
        jitter=table.number("jitter", 0.0, min=0.0, max=0.45),
        fields=tuple(fields),
    )


def _clock_time(table: Table, key: str) -> float:
    text = table.string(key)
    try:
        hours, minutes = (int(part) for part in text.split(":"))
    except ValueError:
        raise table.error(key, f'expected a time of day "HH:MM", got "{text}"') from None
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise table.error(key, f'expected a time of day "HH:MM", got "{text}"')
    return hours * 3600.0 + minutes * 60.0


def load_profiles(directory: Path | None = None) -> dict[str, DeviceProfile]:
    """Every ``*.toml`` profile in ``directory`` (default: the shipped ``device_profiles/``)."""
    folder = directory or DEFAULT_PROFILES_DIR
    if not folder.is_dir():
        raise ConfigError(str(folder), "not a directory of device profiles")
    profiles: dict[str, DeviceProfile] = {}
    for file in sorted(folder.glob("*.toml")):
        profile = load_profile(file)
        if profile.device_type in profiles:
            other = profiles[profile.device_type].source
            raise ConfigError(
                f"{file}: device_type", f'"{profile.device_type}" is already defined in {other}'
            )
        profiles[profile.device_type] = profile
    if not profiles:
        raise ConfigError(str(folder), "holds no *.toml device profiles")
    return profiles
