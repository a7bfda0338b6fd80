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

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from simulator.backend import dashboard_api as api
from simulator.backend.access_log import AccessLog
from simulator.backend.accounts import Accounts, demo_users
from simulator.backend.dashboard_api import json_response, protected
from simulator.backend.openapi import DOCUMENT
from simulator.backend.schema import Login, Refused
from simulator.backend.state import Backend, backend_of
from simulator.backend.store import Store
from simulator.backend.telemetry import Telemetry
from simulator.backend.timing import ServerTiming, segment
from simulator.fleet.build import Fleet

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20  # bytes of one ingest request
MAX_LOGIN_BODY = 4096  # bytes of a login request
WEB = Path(__file__).resolve().parent / "web"


def create_app(
    database: Path | str,
    fleet: Fleet | None = None,
    *,
    accounts: Accounts | None = None,
    slow: bool = False,
    device_credentials: dict[str, str] | None = None,
    access_log: Path | None = None,
    server_timing: bool = True,
) -> Starlette:
    """The reference backend as an ASGI app. ``accounts`` defaults to the demo logins of
    ``fleet``'s farms with read-back off; ``access_log`` writes one JSON line per request
    (see AccessLog). MQTT ingest runs beside the app (:func:`mqtt_consumer`)."""
    if accounts is None:
        farm_ids = [farm.farm_id for farm in fleet.farms] if fleet is not None else []
        accounts = Accounts(demo_users(farm_ids))
    backend = Backend(
        Store(str(database), slow), accounts, fleet, device_credentials=device_credentials
    )
    middleware = [Middleware(ServerTiming)] if server_timing else []
    if access_log:
        middleware.append(Middleware(AccessLog, path=access_log))
    app = Starlette(routes=ROUTES, middleware=middleware)
    app.state.backend = backend
    return app


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, refused (413) as soon as it is known to exceed ``limit`` bytes:
    from its Content-Length before reading, or while reading, never after."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refused("request too large", 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused("request too large", 413)
        chunks.append(chunk)
    return b"".join(chunks)


async def ingest(request: Request) -> Response:
    """``POST /ingest``: one message or a JSON array of them. 202: all stored; 207: some
    refused (the answer counts them by reason); 4xx: none stored."""
    backend = backend_of(request)
    store = backend.store
    sender: str | None = None
    try:
        if backend.device_credentials is not None:
            sender = backend.device_credentials.get(request.headers.get("authorization", ""))
            if sender is None:
                raise Refused("unknown device credentials", 401)
        data = _json(await read_body(request, MAX_BODY))
        items = data if isinstance(data, list) else [data]
        if sender is not None and any(_claims_another(item, sender) for item in items):
            # Checked for the whole batch before anything is stored.
            raise Refused("credentials of another device", 403)
    except Refused as exc:
        store.reject(str(exc))
        return json_response({"error": str(exc)}, exc.status)
    with segment("store"):
        done = store.ingest(items)
    answer = {"stored": done.stored, "rejected": done.rejected, "reasons": done.reasons}
    if done.rejected and not done.stored:
        return json_response(answer, done.status)
    return json_response(answer, 207 if done.rejected else 202)


def _json(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Refused("not JSON", 400) from None


def _claims_another(item: object, sender: str) -> bool:
    """Whether a message names a device other than the one whose credentials sent it."""
    return isinstance(item, dict) and "device_id" in item and item["device_id"] != sender


def _read_back_refusal(request: Request) -> Response | None:
    """None when the request carries the read-back token; else the answer to give."""
    accounts = backend_of(request).accounts
    if accounts.readback_token is None:
        return json_response(
            {"error": "read-back is off: start the backend with --readback-token"}, 403
        )
    if not accounts.may_read_back(request.headers.get("authorization", "")):
        return json_response({"error": "the read-back token is required"}, 401)
    return None


async def readback(request: Request) -> Response:
    """What was stored, per device (``?since=MARK``: only from a mark on)."""
    refusal = _read_back_refusal(request)
    if refusal is not None:
        return refusal
    try:
        return json_response(backend_of(request).store.readback(request.query_params.get("since")))
    except Refused as exc:
        return json_response({"error": str(exc)}, exc.status)


async def readback_mark(request: Request) -> Response:
    """A mark in the backend's time: a run's read-back counts from it (``?since=``)."""
    refusal = _read_back_refusal(request)
    if refusal is not None:
        return refusal
    return json_response({"mark": backend_of(request).store.mark()})


async def login(request: Request) -> Response:
    """``POST /api/login``: a session token for a user name and password."""
    accounts = backend_of(request).accounts
    try:
        body = Login.model_validate_json(await read_body(request, MAX_LOGIN_BODY))
    except Refused as exc:
        return json_response({"error": str(exc)}, exc.status)
    except ValidationError:
        return json_response({"error": "expected a username and a password (strings)"}, 400)
    # scrypt takes tens of milliseconds: in a thread, so the loop keeps serving.
    user = await run_in_threadpool(accounts.check, body.username, body.password)
    if user is None:
        return json_response({"error": "bad credentials"}, 401)
    token = accounts.open_session(user)
    return json_response({"token": token, "expires_in": int(accounts.token_ttl)})


async def openapi(request: Request) -> Response:
    return json_response(DOCUMENT)


async def dashboard_page(request: Request) -> Response:
    """The dashboard's pages: one HTML shell; its script loads each view's data."""
    return HTMLResponse((WEB / "dashboard.html").read_bytes())


async def home(request: Request) -> Response:
    return RedirectResponse("/dashboard/farms")


def _envelope_field(payload: bytes, field: str) -> str | None:
    """A publisher's ``traceparent`` from a field of its JSON payload (MQTT 3.1.1)."""
    try:
        found = orjson.loads(payload).get(field)
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return found if isinstance(found, str) else None


def mqtt_consumer(
    store: Store, telemetry: Telemetry | None = None, envelope: str | None = None
) -> Callable[[str, bytes, str | None], None]:
    """What the MQTT subscriber calls per message (its topic, payload and the
    ``traceparent`` of its MQTT 5 user properties, if any). A message the store refuses is
    counted by its reason (the read-back's refusals); one that breaks the store is logged
    and counted too: no message ever ends the ingest. With ``telemetry`` each message is a
    consumer span, continuing the publisher's trace (from its user properties, or over
    3.1.1 from the payload field ``envelope``)."""

    def store_one(topic: str, payload: bytes) -> None:
        try:
            store.ingest([payload])
        except Exception as exc:  # the database failed: this message is lost, not the rest
            log.error("MQTT ingest could not store a message from %s: %r", topic, exc)
            store.reject(f"store failed: {type(exc).__name__}")

    def on_message(topic: str, payload: bytes, traceparent: str | None = None) -> None:
        if telemetry is None:
            store_one(topic, payload)
            return
        if traceparent is None and envelope is not None:
            traceparent = _envelope_field(payload, envelope)
        with telemetry.consuming(topic, traceparent):
            store_one(topic, payload)

    return on_message


def params(*names: str) -> Callable[[Endpoint], Endpoint]:
    """An endpoint that takes only the query parameters ``names``: any other answers 400
    naming it (a misspelt ``form=`` silently ignored would chart the wrong window)."""
    allowed = frozenset(names)

    def wrap(endpoint: Endpoint) -> Endpoint:
        async def checked(request: Request) -> Response:
            unknown = [key for key in request.query_params if key not in allowed]
            if unknown:
                known = ", ".join(sorted(allowed)) or "none"
                return json_response(
                    {"error": f"unknown query parameter {unknown[0][:40]!r} (takes: {known})"},
                    400,
                )
            return await endpoint(request)

        return checked

    return wrap


Endpoint = Callable[[Request], Awaitable[Response]]

ROUTES = [
    Route("/ingest", params()(ingest), methods=["POST"]),
    Route("/api/readback", params("since")(readback)),
    Route("/api/readback/mark", params()(readback_mark)),
    Route("/api/login", params()(login), methods=["POST"]),
    Route("/api/farms", params()(protected(api.farms))),
    Route("/api/farms/{farm_id}", params()(protected(api.farm))),
    Route("/api/farms/{farm_id}/rooms/{room_id}", params("from", "to")(protected(api.room))),
    Route("/api/devices/{device_id}", params()(protected(api.device))),
    Route("/api/alerts", params()(protected(api.alerts))),
    Route("/api/alerts/{alert_id}/ack", params()(protected(api.acknowledge)), methods=["POST"]),
    Route("/openapi.json", openapi),
    Route("/", home),
    Route("/dashboard/{page:path}", dashboard_page),
    Mount("/static", StaticFiles(directory=WEB)),
]
