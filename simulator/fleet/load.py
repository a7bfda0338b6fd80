"""Loading a fleet: templates and profiles read, checked against each other, and built."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path

from simulator.errors import ConfigError
from simulator.fleet.build import Fleet, build_fleet
from simulator.fleet.device_map import bind, load_device_map
from simulator.fleet.farms import FarmTemplate, load_templates
from simulator.fleet.profiles import DeviceProfile, load_profiles


def load_fleet(
    farms: int,
    seed: int,
    farms_dir: Path | None,
    profiles_dir: Path | None,
    device_types: tuple[str, ...] | None = None,
    device_map: Path | None = None,
    built: Callable[[int], None] | None = None,
) -> tuple[Fleet, dict[str, DeviceProfile]]:
    """Load templates and profiles, check they fit together, and build the fleet (bound to
    the product's provisioned devices by ``device_map``, when given)."""
    profiles = load_profiles(profiles_dir)
    templates = load_templates(farms_dir)
    check_templates(templates, profiles)
    if device_types:
        unknown = [t for t in device_types if t not in profiles]
        if unknown:
            raise ConfigError(
                "--device-types",
                f'unknown device type "{unknown[0]}" (known: {", ".join(sorted(profiles))})',
            )
    fleet = build_fleet(templates, profiles, farms, seed, built)
    if device_map is not None:
        mapping = load_device_map(device_map, fleet.devices.type_names)
        fleet, binding = bind(fleet, mapping)
        fleet = dataclasses.replace(fleet, included=binding.included, device_map=binding.as_dict())
    return fleet, profiles


def check_templates(templates: list[FarmTemplate], profiles: Mapping[str, DeviceProfile]) -> None:
    for template in templates:
        for rule in template.devices:
            if rule.device_type not in profiles:
                raise ConfigError(
                    f"{template.source}: devices.{rule.device_type}",
                    f'no device profile for "{rule.device_type}" '
                    f"(known: {', '.join(sorted(profiles))})",
                )
