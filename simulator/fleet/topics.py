"""MQTT topics of the fleet's devices: the template, its check, and the subscription filter
that matches every topic it renders.
"""

from __future__ import annotations

import string

from simulator.errors import ConfigError
from simulator.fleet.build import Fleet

TOPIC_PLACEHOLDERS = ("farm_id", "room_id", "device_type", "device_id", "kind", "site_id")


DEFAULT_TOPIC_TEMPLATE = "barnstorm/{farm_id}/{room_id}/{device_type}/{device_id}/{kind}"


#: the longest topic name MQTT can carry (a two-byte length prefix).
MAX_TOPIC_BYTES = 65535


def topic_problem(topic: str) -> str | None:
    """Why a broker would refuse ``topic`` as the topic name of a PUBLISH (and drop the
    connection that sent it), or None. A topic name is UTF-8 without NUL, holds no
    wildcard, fits 65,535 bytes; barnstorm also refuses what strict brokers refuse: empty
    levels, and a leading $ (the brokers' own topics, such as $SYS)."""
    if not topic:
        return "is empty"
    if "+" in topic or "#" in topic:
        return "holds an MQTT wildcard (+ or #)"
    if "\x00" in topic:
        return "holds a NUL character"
    if topic.startswith("$"):
        return "starts with $ (the broker's own topics, such as $SYS)"
    if "" in topic.split("/"):
        return "has an empty level (a//b, or a slash at either end), which strict brokers refuse"
    try:
        size = len(topic.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if size > MAX_TOPIC_BYTES:
        return f"is {size:,} bytes long (MQTT allows {MAX_TOPIC_BYTES:,})"
    return None


def check_topic_template(template: str, where: str = "--topic-template") -> str:
    """Validate a topic template: known placeholders only, and text a broker takes."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ConfigError(where, f"{template!r} is not a valid template ({exc})") from None
    for name in names:
        if name not in TOPIC_PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in TOPIC_PLACEHOLDERS)
            raise ConfigError(where, f'unknown placeholder "{{{name}}}" (known: {known})')
    # The fixed text alone, each placeholder as a stand-in value.
    problem = topic_problem(template.format(**dict.fromkeys(TOPIC_PLACEHOLDERS, "x")))
    if problem:
        raise ConfigError(where, f"{template!r} {problem}")
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
    """The topic fleet device ``device`` publishes ``kind`` messages on; one a broker would
    refuse (a wildcard in a device id prefix, say) is bad input, named by device type."""
    table = fleet.devices
    site_id = fleet.site_ids[int(table.site[device])]
    topic = render_topic(
        template,
        fleet.farms[int(table.farm[device])].farm_id,
        fleet.room_of(device) or site_id,
        device_type,
        table.ids[device],
        kind,
        site_id,
    )
    problem = topic_problem(topic)
    if problem:
        raise ConfigError(
            f"device type {device_type}",
            f"the topic {topic!r} of device {table.ids[device]} {problem} "
            f"(topic template {template!r})",
        )
    return topic


def subscription_filter(template: str) -> str:
    """A wildcard filter matching every topic the template can render."""
    levels = []
    for level in template.split("/"):
        levels.append("+" if "{" in level else level)
    return "/".join(levels)
