"""The reference backend: a small farm-health product to point barnstorm at.

It ingests telemetry over HTTP (``POST /ingest``, one message or a JSON array) and,
when given a broker, over MQTT; it stores it in SQLite (WAL); it serves a dashboard API
for the same farms (login, farm list, farm overview, room detail with series, device
detail, alerts and their acknowledgement) and small dashboard pages that use it
(``/dashboard/farms``); and it answers ``GET /api/readback`` with what
it received per device, so a run can reconcile. ``--slow`` turns on a realistic
bottleneck (one query per monitor on the room-detail page instead of one join).

It is a test target and a demo, kept small: ``simulate serve``, or
:func:`create_app` in tests.
"""

from __future__ import annotations

import contextlib
import secrets
import time
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

from simulator.backend.store import Store
from simulator.fleet.build import Fleet

MAX_BODY = 1 << 20  # bytes of one ingest request


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


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
    store = Store(str(database), slow)
    accounts = users or {"farmer": "barnstorm"}
    tokens: set[str] = set()

    def authorised(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        return header.startswith("Bearer ") and header[7:] in tokens

    async def ingest(request: Request) -> Response:
        body = await request.body()
        sender: str | None = None
        if device_credentials is not None:
            # Devices authenticate: a known device's header; a single message must be its own.
            sender = device_credentials.get(request.headers.get("authorization", ""))
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
        stored, bad, status = store.ingest(items)
        if bad and not stored:
            return json_response({"stored": 0, "rejected": bad}, status)
        return json_response({"stored": stored, "rejected": bad}, 202 if not bad else 207)

    async def readback(request: Request) -> Response:
        return json_response(store.readback())

    async def login(request: Request) -> Response:
        try:
            data = orjson.loads(await request.body())
            user, password = data["username"], data["password"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return json_response({"error": "expected username and password"}, 400)
        if accounts.get(user) != password:
            return json_response({"error": "bad credentials"}, 401)
        token = secrets.token_urlsafe(24)
        tokens.add(token)
        return json_response({"token": token})

    def protected(handler: Any) -> Any:
        async def guarded(request: Request) -> Response:
            if not authorised(request):
                return json_response({"error": "login required"}, 401)
            response: Response = await handler(request)
            return response

        return guarded

    async def farms(request: Request) -> Response:
        rows = store.db.execute(
            "SELECT farm_id, COUNT(DISTINCT device_id), COUNT(*) FROM messages GROUP BY farm_id"
        ).fetchall()
        names = {f.farm_id: f.name for f in fleet.farms} if fleet else {}
        return json_response(
            [
                {"farm_id": f, "name": names.get(f, f), "devices": d, "messages": n}
                for f, d, n in rows
            ]
        )

    async def farm(request: Request) -> Response:
        farm_id = request.path_params["farm_id"]
        rows = store.db.execute(
            "SELECT room_id, payload FROM messages WHERE farm_id = ? AND kind = 'daily' "
            "ORDER BY ts",
            (farm_id,),
        ).fetchall()
        if (
            not rows
            and not store.db.execute(
                "SELECT 1 FROM messages WHERE farm_id = ? LIMIT 1", (farm_id,)
            ).fetchone()
        ):
            return json_response({"error": "no such farm"}, 404)
        colours: dict[str, str] = {}
        for room_id, payload in rows:
            colours[room_id] = orjson.loads(bytes(payload)).get("rehs_color", "blue")
        rooms = [
            r
            for (r,) in store.db.execute(
                "SELECT DISTINCT room_id FROM messages WHERE farm_id = ? AND room_id IS NOT NULL",
                (farm_id,),
            )
        ]
        return json_response(
            {
                "farm_id": farm_id,
                "rooms": [{"room_id": r, "health": colours.get(r, "blue")} for r in sorted(rooms)],
            }
        )

    async def room(request: Request) -> Response:
        room_id = request.path_params["room_id"]
        now = time.time()
        start = float(request.query_params.get("from", 0) or 0)
        end = float(request.query_params.get("to", now * 2) or now * 2)
        if store.slow:
            # The bottleneck a stress test should catch, as ORMs write it: one query per
            # device of the room, each loading the device's whole history, the chart's
            # window picked in Python. Fine on a fresh database; it grows with the data.
            devices = [
                d
                for (d,) in store.db.execute(
                    "SELECT DISTINCT device_id FROM messages WHERE room_id = ?", (room_id,)
                )
            ]
            rows = []
            for device in devices:
                history = store.db.execute(
                    "SELECT device_id, kind, ts, payload FROM messages "
                    "WHERE device_id = ? ORDER BY seq",
                    (device,),
                ).fetchall()
                rows += [row for row in history if start <= row[2] <= end]
            rows.sort(key=lambda row: row[2])
        else:
            rows = store.db.execute(
                "SELECT device_id, kind, ts, payload FROM messages "
                "WHERE room_id = ? AND ts BETWEEN ? AND ? ORDER BY ts",
                (room_id, start, end),
            ).fetchall()
        coughs, climate = [], []
        for device_id, kind, ts, payload in rows:
            data = orjson.loads(bytes(payload))
            if kind == "summary" and "cough_count" in data:
                coughs.append({"device_id": device_id, "ts": ts, "coughs": data["cough_count"]})
            elif kind == "reading":
                climate.append(
                    {
                        "device_id": device_id,
                        "ts": ts,
                        "temp_c": data.get("temp_c"),
                        "rh_pct": data.get("rh_pct"),
                        "co2_ppm": data.get("co2_ppm"),
                    }
                )
        return json_response({"room_id": room_id, "coughs": coughs, "climate": climate})

    async def device(request: Request) -> Response:
        device_id = request.path_params["device_id"]
        row = store.db.execute(
            "SELECT payload, COUNT(*) OVER () FROM messages WHERE device_id = ? "
            "ORDER BY ts DESC LIMIT 1",
            (device_id,),
        ).fetchone()
        if row is None:
            return json_response({"error": "no such device"}, 404)
        return json_response(
            {"device_id": device_id, "last": orjson.loads(row[0]), "messages": row[1]}
        )

    async def alerts(request: Request) -> Response:
        rows = store.db.execute(
            "SELECT id, device_id, farm_id, room_id, kind, detail, ts, acknowledged FROM alerts "
            "ORDER BY ts DESC LIMIT 100"
        ).fetchall()
        keys = ("id", "device_id", "farm_id", "room_id", "kind", "detail", "ts", "acknowledged")
        return json_response([dict(zip(keys, row, strict=True)) for row in rows])

    async def acknowledge(request: Request) -> Response:
        alert_id = int(request.path_params["alert_id"])
        changed = store.db.execute(
            "UPDATE alerts SET acknowledged = 1 WHERE id = ?", (alert_id,)
        ).rowcount
        return json_response(
            {"id": alert_id, "acknowledged": bool(changed)}, 200 if changed else 404
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if mqtt is None:
            yield
            return
        from simulator.transports.mqtt.subscriber import MqttSubscriber

        def on_message(topic: str, payload: bytes) -> None:
            store.ingest([payload])

        async with MqttSubscriber(
            mqtt, mqtt_topic, on_message, client_id=f"barnstorm-backend-{secrets.token_hex(4)}"
        ):
            yield

    routes = [
        Route("/ingest", ingest, methods=["POST"]),
        Route("/api/readback", readback),
        Route("/api/login", login, methods=["POST"]),
        Route("/api/farms", protected(farms)),
        Route("/api/farms/{farm_id}", protected(farm)),
        Route("/api/farms/{farm_id}/rooms/{room_id}", protected(room)),
        Route("/api/devices/{device_id}", protected(device)),
        Route("/api/alerts", protected(alerts)),
        Route("/api/alerts/{alert_id:int}/ack", protected(acknowledge), methods=["POST"]),
        Route("/", lambda _: RedirectResponse("/dashboard/farms")),
        Route("/dashboard/{page:path}", dashboard_page),
        Mount("/static", StaticFiles(directory=WEB)),
    ]
    middleware = [Middleware(AccessLog, path=access_log)] if access_log else []
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware)
    app.state.store = store
    return app


WEB = Path(__file__).resolve().parent / "web"


async def dashboard_page(request: Request) -> Response:
    """The dashboard's pages: one HTML shell; its script loads each view's data."""
    return HTMLResponse((WEB / "dashboard.html").read_bytes())


class AccessLog:
    """ASGI middleware: one JSON line per HTTP request, with its trace context::

    {"t": 1764301234.5, "method": "GET", "path": "/api/farms", "status": 200,
     "ms": 3.1, "traceparent": "00-...", "baggage": "barnstorm.run=...", ...}
    """

    HEADERS = (b"traceparent", b"baggage", b"sentry-trace")

    def __init__(self, app: Any, path: Path) -> None:
        self.app = app
        self.file = path.open("ab", buffering=0)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.time()
        status = 0

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            line: dict[str, Any] = {
                "t": round(started, 4),
                "method": scope["method"],
                "path": scope["path"],
                "query": scope["query_string"].decode("latin-1"),
                "status": status,
                "ms": round((time.time() - started) * 1000, 2),
            }
            for name, value in scope["headers"]:
                if name in self.HEADERS:
                    line[name.decode()] = value.decode("latin-1")
            self.file.write(orjson.dumps(line) + b"\n")
