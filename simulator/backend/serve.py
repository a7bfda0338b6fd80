"""Serving the reference backend (``simulate serve``): the app built for a fleet, under
uvicorn, in this process."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from simulator.backend.accounts import DEFAULT_TOKEN_TTL, DEMO_PASSWORD, Accounts, demo_users
from simulator.backend.accounts import load_users as load_user_file
from simulator.backend.app import create_app, mqtt_consumer
from simulator.backend.store import Store
from simulator.backend.telemetry import Telemetry
from simulator.errors import ConfigError
from simulator.fleet.credentials import load_credentials
from simulator.fleet.load import load_fleet
from simulator.redact import redact_url
from simulator.transports.mqtt.settings import MqttSettings
from simulator.transports.mqtt.subscriber import MqttSubscriber


@dataclass(frozen=True)
class ServeConfig:
    """Where the backend listens, what it stores in, who may use it, and the fleet it knows."""

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
    #: dashboard users (TOML); None: the demo logins, on loopback only.
    users: Path | None = None
    token_ttl: float = DEFAULT_TOKEN_TTL
    #: the bearer token /api/readback wants; None: read-back is off.
    readback_token: str | None = field(default=None, repr=False)
    #: export the backend's own traces (OpenTelemetry) to this OTLP/HTTP URL.
    otlp: str | None = None
    #: the payload field an MQTT 3.1.1 message carries its publisher's traceparent in.
    trace_envelope: str | None = None
    #: send the Server-Timing header (off: the spans alone tell where time went).
    server_timing: bool = True


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def accounts_for(config: ServeConfig, farm_ids: list[str]) -> Accounts:
    """The users of ``config`` (its file, or the demo logins on loopback), their tokens'
    lifetime and the read-back token."""
    if config.users is not None:
        users = load_user_file(config.users)
    elif is_loopback(config.host):
        users = demo_users(farm_ids)
    else:
        raise ConfigError(
            "--host",
            f"{config.host} is reachable from other machines: give --users FILE (the demo "
            "logins serve loopback only)",
        )
    return Accounts(users, token_ttl=config.token_ttl, readback_token=config.readback_token)


def serve(config: ServeConfig) -> None:
    """Build the app for ``config`` and serve it until interrupted. Everything that can
    fail at start (the database, the port, the broker) fails before serving, as one line."""
    fleet, _ = load_fleet(config.farms, config.seed, None, None)
    accounts = accounts_for(config, [farm.farm_id for farm in fleet.farms])
    accepted = None
    if config.device_credentials is not None:
        by_device = load_credentials(config.device_credentials, fleet.devices.ids)
        accepted = {c.http_header(): fleet.devices.ids[i] for i, c in by_device.items()}
    mqtt = MqttSettings.from_url(config.mqtt) if config.mqtt else None
    # Before the app (and its store's connection): the instrumentations wrap connect().
    telemetry = Telemetry(config.otlp) if config.otlp else None
    app = create_app(
        config.database,
        fleet,
        accounts=accounts,
        slow=config.slow,
        device_credentials=accepted,
        access_log=config.access_log,
        server_timing=config.server_timing,
    )
    if telemetry is not None:
        telemetry.instrument(app)
    sock = _listening_socket(config.host, config.port)
    try:
        banner = _banner(config)
        asyncio.run(_serve(app, sock, mqtt, config.topic, banner, telemetry, config.trace_envelope))
    finally:
        if telemetry is not None:
            telemetry.shutdown()
    print("barnstorm reference backend stopped", file=sys.stderr, flush=True)


def _listening_socket(host: str, port: int) -> socket.socket:
    """The backend's socket, bound here so that a taken port is one clear line."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise ConfigError(
            "--port", f"cannot listen on {host}:{port} ({exc.strerror or exc})"
        ) from None
    return sock


async def _serve(
    app: Starlette,
    sock: socket.socket,
    mqtt: MqttSettings | None,
    topic: str,
    banner: list[str],
    telemetry: Telemetry | None = None,
    trace_envelope: str | None = None,
) -> None:
    """Serve ``app`` on ``sock`` until a signal; with a broker, ingest from it meanwhile."""
    store: Store = app.state.backend.store
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            # Dashboard users think for seconds between views, and load balancers keep
            # connections 60-75 s: a 5 s keep-alive closes connections clients still hold.
            timeout_keep_alive=75,
        )
    )
    async with contextlib.AsyncExitStack() as stack:
        if mqtt is not None:
            client_id = f"barnstorm-backend-{secrets.token_hex(4)}"
            # With traces on, MQTT 5: a publisher's traceparent is in its user properties.
            consumer = mqtt_consumer(store, telemetry, trace_envelope)
            mqtt5 = telemetry is not None
            subscriber = MqttSubscriber(mqtt, topic, consumer, client_id, mqtt5=mqtt5)
            await stack.enter_async_context(subscriber)
        for line in banner:
            print(line, file=sys.stderr, flush=True)
        await server.serve(sockets=[sock])


def _banner(config: ServeConfig) -> list[str]:
    """Where the backend listens, what it stores in, and how to log in (no secrets)."""
    url = f"http://{config.host}:{config.port}"
    slow = ", the slow room chart" if config.slow else ""
    mqtt = f" and MQTT {config.topic} from {redact_url(config.mqtt)}" if config.mqtt else ""
    logins = (
        f"users from {config.users}"
        if config.users is not None
        else f"demo logins farmer and advisor, password {DEMO_PASSWORD}"
    )
    readback = "on (bearer token)" if config.readback_token else "off (no --readback-token)"
    traces = f"  traces: OpenTelemetry to {redact_url(config.otlp)}" if config.otlp else None
    timing = "" if config.server_timing else " (no Server-Timing header)"
    return [
        f"barnstorm reference backend on {url} (database {redact_url(config.database)}{slow})",
        f"  ingest: POST {url}/ingest{mqtt}",
        f"  dashboards: {url}/dashboard/farms ({logins}); API: {url}/openapi.json",
        f"  read-back: {url}/api/readback, {readback}",
        *([traces + timing] if traces else ([f"  {timing.strip(' ()')}"] if timing else [])),
    ]
