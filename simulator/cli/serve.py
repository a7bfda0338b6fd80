"""``simulate serve``: the reference backend, in this process."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from simulator.cli.options import (
    config_option,
    farms_option,
    http_url,
    mqtt_option,
    option,
    positive_duration,
    readable,
    seed_option,
)
from simulator.errors import ConfigError
from simulator.redact import register


@click.command("serve")
@config_option
# BARNSTORM_HOST is the dashboards' URL in `simulate mixed` and `capacity`: the bind
# address has its own variable.
@option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="BARNSTORM_SERVE_HOST",
    help="Address to bind.",
)
@option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8080,
    show_default=True,
    envvar="BARNSTORM_SERVE_PORT",
)
@option(
    "--database",
    default="barnstorm-backend.db",
    show_default=True,
    help="SQLite file, or a postgresql://user@host/db URL.",
)
@mqtt_option("Also ingest from this broker.")
@option("--topic", default="barnstorm/#", show_default=True, help="MQTT topic filter to ingest.")
@option(
    "--device-credentials",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Require device authentication on /ingest (CSV: device_id and username,password "
    "or token, as for simulate --credentials).",
)
@option(
    "--slow",
    is_flag=True,
    help="Turn on a realistic bottleneck (room detail: an N+1, a query per message).",
)
@farms_option(help="Fleet whose farm names the dashboards show.")
@seed_option()
@option(
    "--users",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="BARNSTORM_SERVE_USERS",
    help="Dashboard users: a TOML file of [users.NAME] with password (a hash from "
    '--hash-password), role (viewer or operator) and farms (a list, or "*"). Without it, '
    "the demo logins farmer and advisor (password barnstorm) on loopback only.",
)
@option(
    "--token-ttl",
    default="1h",
    show_default=True,
    help="How long a dashboard session token lasts.",
)
@option(
    "--readback-token",
    envvar="BARNSTORM_READBACK_TOKEN",
    show_envvar=True,
    help="Bearer token /api/readback wants (prefer the environment variable; without it "
    "read-back is off). simulate --readback sends the same variable.",
)
@option(
    "--hash-password",
    is_flag=True,
    help="Read a password from standard input, print its hash for a --users file, and exit.",
)
@option(
    "--access-log",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append one JSON line per request (method, path, status, time, trace headers).",
)
@option(
    "--otlp",
    metavar="URL",
    help="Export the backend's own traces (the OpenTelemetry SDK and its Starlette, SQLite "
    "and psycopg instrumentations) to this OTLP/HTTP URL, e.g. http://127.0.0.1:4318; a "
    "request or an MQTT 5 message with a traceparent continues its trace. Needs "
    "pip install 'barnstorm[otel]'.",
)
@option(
    "--trace-envelope",
    metavar="FIELD",
    help="With --otlp and an MQTT 3.1.1 broker: continue a publisher's trace from this "
    "field of the message's JSON payload (barnstorm's --trace-envelope).",
)
@option(
    "--no-server-timing",
    is_flag=True,
    help="Send no Server-Timing header (the spans alone must tell where the time went).",
)
def serve_command(
    host: str,
    port: int,
    database: str,
    mqtt: str | None,
    topic: str,
    slow: bool,
    farms: int,
    seed: int,
    device_credentials: Path | None,
    users: Path | None,
    token_ttl: str,
    readback_token: str | None,
    hash_password: bool,
    access_log: Path | None,
    otlp: str | None,
    trace_envelope: str | None,
    no_server_timing: bool,
) -> None:
    """Run the reference backend: HTTP and MQTT ingest, dashboard API and pages
    (/dashboard/farms) for each user's farms, read-back."""
    if hash_password:
        _print_hash()
        return
    # Imported here: only this command needs the web stack (starlette, uvicorn).
    from simulator.backend.serve import ServeConfig, serve

    if readback_token is not None and len(readback_token) < 16:
        raise ConfigError("--readback-token", "expected at least 16 characters")
    register(readback_token)

    serve(
        ServeConfig(
            host=host,
            port=port,
            database=database,
            mqtt=mqtt,
            topic=topic,
            slow=slow,
            farms=farms,
            seed=seed,
            device_credentials=device_credentials,
            access_log=access_log,
            users=readable(users, "--users"),
            token_ttl=positive_duration(token_ttl, "--token-ttl"),
            readback_token=readback_token,
            otlp=http_url(otlp, "--otlp"),
            trace_envelope=trace_envelope,
            server_timing=not no_server_timing,
        )
    )


def _print_hash() -> None:
    """``--hash-password``: a password from standard input (a prompt on a terminal)."""
    from simulator.backend.accounts import hash_password

    if sys.stdin.isatty():
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise ConfigError("--hash-password", "expected a password on standard input")
    click.echo(hash_password(password))
