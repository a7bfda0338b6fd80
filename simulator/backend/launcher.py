"""The reference backend as a child process, for the embedded default.

Kept apart from the app so that starting it imports neither starlette nor uvicorn: the child
process (``simulate serve``) does.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from simulator.backend.broker import ChildServer
from simulator.redact import register


class EmbeddedBackend(ChildServer):
    """The reference backend as a child process, ingesting from ``mqtt_url`` (the embedded
    default's whole loop: broker, backend, dashboards, read-back)."""

    kind = "backend"

    def __init__(self, mqtt_url: str, topic: str, farms: int, seed: int) -> None:
        super().__init__()
        self.mqtt_url = mqtt_url
        self.topic = topic
        self.farms = farms
        self.seed = seed
        #: the read-back's token, made for this run and known to it and the child only.
        self.readback_token = secrets.token_urlsafe(24)
        register(self.readback_token)

    def _environment(self) -> dict[str, str]:
        return {**os.environ, "BARNSTORM_READBACK_TOKEN": self.readback_token}

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _command(self, workdir: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "simulator",
            "serve",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--database",
            str(workdir / "backend.db"),
            "--mqtt",
            self.mqtt_url,
            "--topic",
            self.topic,
            "--farms",
            str(self.farms),
            "--seed",
            str(self.seed),
        ]
