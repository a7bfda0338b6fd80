"""Serving the reference backend (``simulate serve``): the app built for a fleet, under
uvicorn, in this process."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn

from simulator.backend.app import create_app
from simulator.fleet.credentials import load_credentials
from simulator.fleet.load import load_fleet
from simulator.transports.mqtt.settings import MqttSettings


@dataclass(frozen=True)
class ServeConfig:
    """Where the backend listens, what it stores in, and the fleet it knows."""

    host: str = "127.0.0.1"
    port: int = 8080
    database: str = "barnstorm-backend.db"
    mqtt: str | None = None  # also ingest from this broker
    topic: str = "barnstorm/#"
    slow: bool = False
    farms: int = 10
    seed: int = 0
    device_credentials: Path | None = None
    access_log: Path | None = None


def serve(config: ServeConfig) -> None:
    """Build the app for ``config`` and serve it until interrupted."""
    fleet, _ = load_fleet(config.farms, config.seed, None, None)
    accepted = None
    if config.device_credentials is not None:
        by_device = load_credentials(config.device_credentials, fleet.devices.ids)
        accepted = {c.http_header(): fleet.devices.ids[i] for i, c in by_device.items()}
    app = create_app(
        config.database,
        fleet,
        slow=config.slow,
        mqtt=MqttSettings.from_url(config.mqtt) if config.mqtt else None,
        mqtt_topic=config.topic,
        device_credentials=accepted,
        access_log=config.access_log,
    )
    for line in _banner(config):
        print(line, file=sys.stderr, flush=True)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")
    print("barnstorm reference backend stopped", file=sys.stderr, flush=True)


def _banner(config: ServeConfig) -> list[str]:
    """Where the backend listens, what it stores in, and how to log in."""
    url = f"http://{config.host}:{config.port}"
    slow = ", the slow room chart" if config.slow else ""
    mqtt = f" and MQTT {config.topic} from {_masked(config.mqtt)}" if config.mqtt else ""
    return [
        f"barnstorm reference backend on {url} (database {_masked(config.database)}{slow})",
        f"  ingest: POST {url}/ingest{mqtt}",
        f"  dashboards: {url}/dashboard/farms (log in as farmer / barnstorm); "
        f"read-back: {url}/api/readback",
    ]


def _masked(url: str) -> str:
    """``url`` with any password replaced by ***: a banner is no place for secrets."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
