"""Serving the reference backend (``simulate serve``): the app built for a fleet, under
uvicorn, in this process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")
