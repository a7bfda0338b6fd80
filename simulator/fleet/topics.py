"""MQTT topics of the fleet's devices: the template, its check, and the subscription filter
that matches every topic it renders.
"""

from __future__ import annotations

import string

from simulator.errors import ConfigError
from simulator.fleet.build import Fleet

TOPIC_PLACEHOLDERS = ("farm_id", "room_id", "device_type", "device_id", "kind", "site_id")


DEFAULT_TOPIC_TEMPLATE = "barnstorm/{farm_id}/{room_id}/{device_type}/{device_id}/{kind}"


def check_topic_template(template: str, where: str = "--topic-template") -> str:
    """Validate a topic template: known placeholders only, no MQTT wildcards."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ConfigError(where, f'"{template}" is not a valid template ({exc})') from None
    for name in names:
        if name not in TOPIC_PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in TOPIC_PLACEHOLDERS)
            raise ConfigError(where, f'unknown placeholder "{{{name}}}" (known: {known})')
    if "#" in template or "+" in template or not template:
        raise ConfigError(where, f'"{template}" is empty or holds an MQTT wildcard (# or +)')
    return template


def render_topic(
    template: str,
    farm_id: str,
    room_id: str,
    device_type: str,
    device_id: str,
    kind: str,
    site_id: str = "",
) -> str:
    """A device's topic; gateways, which have no room, use their site id as ``room_id``."""
    return template.format(
        farm_id=farm_id,
        room_id=room_id,
        device_type=device_type,
        device_id=device_id,
        kind=kind,
        site_id=site_id,
    )


def device_topic(template: str, fleet: Fleet, device: int, device_type: str, kind: str) -> str:
    """The topic fleet device ``device`` publishes ``kind`` messages on."""
    table = fleet.devices
    site_id = fleet.site_ids[int(table.site[device])]
    return render_topic(
        template,
        fleet.farms[int(table.farm[device])].farm_id,
        fleet.room_of(device) or site_id,
        device_type,
        table.ids[device],
        kind,
        site_id,
    )


def subscription_filter(template: str) -> str:
    """A wildcard filter matching every topic the template can render."""
    levels = []
    for level in template.split("/"):
        levels.append("+" if "{" in level else level)
    return "/".join(levels)
