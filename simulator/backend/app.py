"""The reference backend: a small farm-health product to point barnstorm at.

It ingests telemetry over HTTP (``POST /ingest``, one message or a JSON array) and,
when given a broker, over MQTT; it stores it in SQLite (WAL); it serves a dashboard API
for the same farms (login, farm list, farm overview, room detail with series, device
detail, alerts and their acknowledgement, in :mod:`~simulator.backend.dashboard_api`) and
small dashboard pages that use it (``/dashboard/farms``); and it answers
``GET /api/readback`` with what it received per device, so a run can reconcile.
``--slow`` turns on a realistic bottleneck (an N+1 on the room-detail page: a query per
message of the chart instead of one). Every response says where its time went in a
``Server-Timing`` header (:mod:`~simulator.backend.timing`).

It is a test target and a demo, kept small: ``simulate serve``, or :func:`create_app` in
tests.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Lifespan

from simulator.backend import dashboard_api as api
from simulator.backend.access_log import AccessLog
from simulator.backend.dashboard_api import json_response, protected
from simulator.backend.state import Backend, backend_of
from simulator.backend.store import Invalid, Store
from simulator.backend.timing import ServerTiming, segment
from simulator.fleet.build import Fleet

MAX_BODY = 1 << 20  # bytes of one ingest request
WEB = Path(__file__).resolve().parent / "web"


def create_app(
    database: Path | str,
    fleet: Fleet | None = None,
    *,
    slow: bool = False,
    users: dict[str, str] | None = None,
    mqtt: Any = None,
    mqtt_topic: str = "barnstorm/#",
    device_credentials: dict[str, str] | None = None,
    access_log: Path | None = None,
) -> Starlette:
    """The reference backend as an ASGI app. ``mqtt`` (an ``MqttSettings``) adds MQTT ingest
    of ``mqtt_topic``; ``access_log`` writes one JSON line per request (see AccessLog)."""
    backend = Backend(Store(str(database), slow), fleet, device_credentials=device_credentials)
    if users is not None:
        backend.accounts = users
    middleware = [Middleware(ServerTiming)]
    if access_log:
        middleware.append(Middleware(AccessLog, path=access_log))
    app = Starlette(
        routes=ROUTES, lifespan=_mqtt_ingest(backend, mqtt, mqtt_topic), middleware=middleware
    )
    app.state.backend = backend
    return app


async def ingest(request: Request) -> Response:
    """``POST /ingest``: one message or a JSON array; 202 all stored, 207 some rejected."""
    backend = backend_of(request)
    store = backend.store
    body = await request.body()
    sender: str | None = None
    if backend.device_credentials is not None:
        # Devices authenticate: a known device's header; a single message must be its own.
        sender = backend.device_credentials.get(request.headers.get("authorization", ""))
        if sender is None:
            store.reject("unauthorised")
            return json_response({"error": "unknown device credentials"}, 401)
    if len(body) > MAX_BODY:
        store.reject("request too large")
        return json_response({"error": "request too large"}, 413)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        store.reject("not JSON")
        return json_response({"error": "not JSON"}, 400)
    items = data if isinstance(data, list) else [data]
    if sender is not None and isinstance(data, dict) and data.get("device_id") != sender:
        store.reject("forbidden")
        return json_response({"error": "credentials of another device"}, 403)
    with segment("store"):
        stored, bad, status = store.ingest(items)
    if bad and not stored:
        return json_response({"stored": 0, "rejected": bad}, status)
    return json_response({"stored": stored, "rejected": bad}, 202 if not bad else 207)


async def readback(request: Request) -> Response:
    """What was stored, per device (``?since=MARK``: only from a mark on)."""
    try:
        return json_response(backend_of(request).store.readback(request.query_params.get("since")))
    except Invalid as exc:
        return json_response({"error": str(exc)}, exc.status)


async def readback_mark(request: Request) -> Response:
    """A mark in the backend's time: a run's read-back counts from it (``?since=``)."""
    return json_response({"mark": backend_of(request).store.mark()})


async def login(request: Request) -> Response:
    backend = backend_of(request)
    try:
        data = orjson.loads(await request.body())
        user, password = data["username"], data["password"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return json_response({"error": "expected username and password"}, 400)
    if backend.accounts.get(user) != password:
        return json_response({"error": "bad credentials"}, 401)
    return json_response({"token": backend.new_token()})


async def dashboard_page(request: Request) -> Response:
    """The dashboard's pages: one HTML shell; its script loads each view's data."""
    return HTMLResponse((WEB / "dashboard.html").read_bytes())


async def home(request: Request) -> Response:
    return RedirectResponse("/dashboard/farms")


def _mqtt_ingest(backend: Backend, mqtt: Any, topic: str) -> Lifespan[Starlette]:
    """The app's lifespan: with a broker, subscribe to ``topic`` and store what arrives."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if mqtt is None:
            yield
            return
        from simulator.transports.mqtt.subscriber import MqttSubscriber

        def on_message(topic: str, payload: bytes) -> None:
            backend.store.ingest([payload])

        client_id = f"barnstorm-backend-{secrets.token_hex(4)}"
        async with MqttSubscriber(mqtt, topic, on_message, client_id=client_id):
            yield

    return lifespan


ROUTES = [
    Route("/ingest", ingest, methods=["POST"]),
    Route("/api/readback", readback),
    Route("/api/readback/mark", readback_mark),
    Route("/api/login", login, methods=["POST"]),
    Route("/api/farms", protected(api.farms)),
    Route("/api/farms/{farm_id}", protected(api.farm)),
    Route("/api/farms/{farm_id}/rooms/{room_id}", protected(api.room)),
    Route("/api/devices/{device_id}", protected(api.device)),
    Route("/api/alerts", protected(api.alerts)),
    Route("/api/alerts/{alert_id:int}/ack", protected(api.acknowledge), methods=["POST"]),
    Route("/", home),
    Route("/dashboard/{page:path}", dashboard_page),
    Mount("/static", StaticFiles(directory=WEB)),
]
