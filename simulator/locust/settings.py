"""The Locust plugin's settings: the fleet's options (``--barnstorm-*``, each also its
``BARNSTORM_*`` variable and a ``locust.conf`` key) and the run-level verdicts and reports
(``--barnstorm-sla``, ``-junit``, ``-html``, ``-report``, ``-max-failed``)."""

from __future__ import annotations

import json
import os
from typing import Any

from locust import events
from locust.env import Environment

#: the fleet's settings as Locust options ``--barnstorm-NAME``, each also read from
#: ``BARNSTORM_NAME`` (the variable of ``simulate run`` it is handed to the fleet as).
FLEET_OPTIONS: tuple[tuple[str, type, str], ...] = (
    ("farms", int, "Farms in the device fleet (default 500)."),
    ("mqtt", str, "The devices' MQTT broker, mqtt://host:1883 (default: an embedded one)."),
    ("http", str, "An HTTP ingest URL for the devices, instead of MQTT."),
    ("speed", str, "Simulated seconds per real second (default 1)."),
    ("duration", str, "How long the fleet runs (default: until the test stops)."),
    ("qos", int, "MQTT QoS (default 1)."),
    ("seed", int, "The fleet's seed: the same seed, the same farms and devices."),
    ("device-types", str, "Only these device types (comma-separated)."),
    ("connection", str, "per-device or per-gateway MQTT connections."),
    ("topic-template", str, "MQTT topic template, e.g. farms/{farm_id}/{device_id}/{kind}."),
    ("connect-rate", str, "New device connections per second during the ramp."),
    ("client-id-prefix", str, "Start of every MQTT client id (default: the run's own)."),
    ("scenario", str, "A scenario file of events to play (outbreak, network outage ...)."),
)
#: Locust-level verdicts and reports, over the devices and the suite's users together.
VERDICT_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("junit", "BARNSTORM_LOCUST_JUNIT", "Write the SLA verdicts as JUnit XML to this file."),
    ("html", "BARNSTORM_LOCUST_HTML", "Write barnstorm's HTML page of the run to this file."),
    ("report", "BARNSTORM_LOCUST_REPORT", "Write barnstorm's JSON report of the run to this file."),
    (
        "max-failed",
        "BARNSTORM_MAX_FAILED",
        "The share of dashboard requests, and of device messages, that may fail before the "
        "run exits 5 (default 1%; 100% never fails the run for it).",
    ),
)


@events.init_command_line_parser.add_listener
def add_fleet_options(parser: Any) -> None:
    """The fleet's settings in ``locust --help``, the web UI and ``locust.conf``."""
    for name, kind, text in FLEET_OPTIONS:
        variable = "BARNSTORM_" + name.replace("-", "_").upper()
        parser.add_argument(f"--barnstorm-{name}", type=kind, env_var=variable, help=text)
    parser.add_argument(
        "--barnstorm-clean",
        action="store_true",
        env_var="BARNSTORM_CLEAN",
        help="No fleet imperfections (jitter, duplicates, spikes ...).",
    )
    parser.add_argument(
        "--barnstorm-sla",
        action="append",
        help='An SLA over devices and users together, e.g. "ingest.p95<250ms" (repeatable).',
        include_in_web_ui=False,
    )
    for name, variable, text in VERDICT_OPTIONS:
        parser.add_argument(
            f"--barnstorm-{name}", env_var=variable, help=text, include_in_web_ui=False
        )


def _option(environment: Environment, name: str) -> Any:
    options = environment.parsed_options
    return getattr(options, "barnstorm_" + name.replace("-", "_"), None) if options else None


def fleet_environment(environment: Environment) -> dict[str, str]:
    """The environment of a fleet child: this process's, with the ``--barnstorm-*`` options
    as the ``BARNSTORM_*`` variables ``simulate run`` reads."""
    env = os.environ.copy()
    for name, _, _ in (*FLEET_OPTIONS, ("clean", bool, "")):
        value = _option(environment, name)
        if value is None or value is False or value == "":
            continue
        env["BARNSTORM_" + name.replace("-", "_").upper()] = "1" if value is True else str(value)
    # The SLAs and reports are Locust's, over both kinds of load, not the fleet's alone.
    # The trace receiver is the master's (or this process's): the fleet only marks its
    # requests, as BARNSTORM_TRACE_SAMPLE says.
    if env.pop("BARNSTORM_OTLP_RECEIVER", None) or getattr(
        environment.parsed_options, "barnstorm_otlp_receiver", None
    ):
        env.setdefault("BARNSTORM_TRACE_SAMPLE", "100%")  # as the users' (locust/traces.py)
    for name in ("BARNSTORM_SLA", "BARNSTORM_JUNIT", "BARNSTORM_HTML"):
        env.pop(name, None)
    return env


def verdict_setting(environment: Environment, name: str) -> str | None:
    """``--barnstorm-junit``, ``--barnstorm-html`` or ``--barnstorm-report`` (or their
    variables)."""
    value = _option(environment, name)
    if value:
        return str(value)
    variable = next(v for n, v, _ in VERDICT_OPTIONS if n == name)
    return os.environ.get(variable) or None


def sla_texts(environment: Environment) -> list[str]:
    """``--barnstorm-sla`` (repeatable), or ``BARNSTORM_LOCUST_SLAS`` (a JSON list)."""
    given = _option(environment, "sla")
    if given:
        return [str(text) for text in given]
    return [str(text) for text in json.loads(os.environ.get("BARNSTORM_LOCUST_SLAS") or "[]")]
