"""``simulate serve``: the reference backend, in this process."""

from __future__ import annotations

from pathlib import Path

import click

from simulator.cli.options import config_option, farms_option, mqtt_option, option, seed_option


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
    "--access-log",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append one JSON line per request (method, path, status, time, trace headers).",
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
    access_log: Path | None,
) -> None:
    """Run the reference backend: HTTP and MQTT ingest, dashboard API and pages
    (/dashboard/farms), read-back."""
    # Imported here: only this command needs the web stack (starlette, uvicorn).
    from simulator.backend.serve import ServeConfig, serve

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
        )
    )
