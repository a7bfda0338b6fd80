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
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .broker import ChildServer
from .fleet import Fleet
from .units import parse_instant

MAX_BODY = 1 << 20  # bytes of one ingest request
MAX_MESSAGE = 16 * 1024  # bytes of one message
ENVELOPE_TYPES: dict[str, type | tuple[type, ...]] = {
    "device_id": str,
    "device_type": str,
    "farm_id": str,
    "seq": int,
    "ts": (str, int),
    "kind": str,
}
TEMPERATURE_ALARM_C = 32.0

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS messages (device_id TEXT NOT NULL, seq BIGINT NOT NULL, "
    "kind TEXT NOT NULL, farm_id TEXT NOT NULL, room_id TEXT, ts DOUBLE PRECISION NOT NULL, "
    "received DOUBLE PRECISION NOT NULL, payload {blob} NOT NULL)",
    "CREATE INDEX IF NOT EXISTS messages_device ON messages (device_id, seq)",
    "CREATE INDEX IF NOT EXISTS messages_room ON messages (room_id, ts)",
    "CREATE TABLE IF NOT EXISTS alerts (id {serial}, device_id TEXT NOT NULL, "
    "farm_id TEXT NOT NULL, room_id TEXT, kind TEXT NOT NULL, detail TEXT NOT NULL, "
    "ts DOUBLE PRECISION NOT NULL, acknowledged INTEGER DEFAULT 0)",
]


class Database:
    """SQLite (a file, WAL) or PostgreSQL (a ``postgresql://`` URL) behind one small API.

    Queries are written with ``?`` placeholders; PostgreSQL gets ``%s``.
    """

    def __init__(self, target: str) -> None:
        self.target = target
        self.postgres = target.startswith(("postgresql://", "postgres://"))
        if self.postgres:
            import psycopg

            self._pg = psycopg.connect(target, autocommit=True)
            blob, serial = "BYTEA", "BIGSERIAL PRIMARY KEY"
        else:
            self._sqlite = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
            self._sqlite.execute("PRAGMA journal_mode=WAL")
            self._sqlite.execute("PRAGMA synchronous=NORMAL")
            blob, serial = "BLOB", "INTEGER PRIMARY KEY"
        for statement in _SCHEMA:
            self.execute(statement.format(blob=blob, serial=serial))

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        """Run one statement; the cursor answers fetchone/fetchall, iteration and rowcount."""
        if self.postgres:
            return self._pg.execute(self._sql(sql), params)
        return self._sqlite.execute(sql, params)

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if self.postgres:
            with self._pg.cursor() as cursor:
                cursor.executemany(self._sql(sql), rows)
        else:
            self._sqlite.executemany(sql, rows)


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


class Invalid(ValueError):
    """A message the ingest refuses; ``status`` is the HTTP answer."""

    def __init__(self, reason: str, status: int = 422) -> None:
        super().__init__(reason)
        self.status = status


def validate(message: object) -> dict[str, Any]:
    """The envelope checks a real ingest does before storing anything."""
    if not isinstance(message, dict):
        raise Invalid("a message must be a JSON object")
    for key, kind in ENVELOPE_TYPES.items():
        if key not in message:
            raise Invalid(f"missing {key}")
        value = message[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise Invalid(f"{key} has the wrong type")
    if message["seq"] < 0:
        raise Invalid("seq is negative")
    return message


def timestamp(value: str | int) -> float:
    if isinstance(value, int):
        return float(value)
    try:
        return parse_instant(value)
    except ValueError:
        raise Invalid("ts is not an ISO 8601 instant") from None


@dataclass
class Store:
    """The backend's database and counters."""

    target: str
    slow: bool = False
    rejected: dict[str, int] = field(default_factory=dict)
    db: Database = field(init=False)

    def __post_init__(self) -> None:
        self.db = Database(self.target)

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def ingest(self, raw: Iterable[bytes | dict[str, Any]]) -> tuple[int, int, int]:
        """Store valid messages; count and skip invalid ones.

        Returns (stored, rejected, the HTTP status of the first rejection or 0).
        """
        rows = []
        alerts = []
        bad = 0
        status = 0
        now = time.time()
        for item in raw:
            try:
                if isinstance(item, bytes | bytearray):
                    if len(item) > MAX_MESSAGE:
                        raise Invalid("message too large", 413)
                    try:
                        item = orjson.loads(item)
                    except orjson.JSONDecodeError:
                        raise Invalid("not JSON", 400) from None
                message = validate(item)
                ts = timestamp(message["ts"])
            except Invalid as exc:
                self.reject(str(exc))
                bad += 1
                status = status or exc.status
                continue
            payload = orjson.dumps(message)
            if len(payload) > MAX_MESSAGE:
                self.reject("message too large")
                bad += 1
                status = status or 413
                continue
            room = message.get("room_id")
            rows.append(
                (
                    message["device_id"],
                    message["seq"],
                    message["kind"],
                    message["farm_id"],
                    room,
                    ts,
                    now,
                    payload,
                )
            )
            if message.get("rehs_color") == "red":
                alerts.append(
                    (
                        message["device_id"],
                        message["farm_id"],
                        room,
                        "red_score",
                        f"respiratory health score {message.get('rehs')}",
                        ts,
                    )
                )
            temp = message.get("temp_c")
            if isinstance(temp, int | float) and temp > TEMPERATURE_ALARM_C:
                alerts.append(
                    (
                        message["device_id"],
                        message["farm_id"],
                        room,
                        "temperature",
                        f"{temp} °C",
                        ts,
                    )
                )
        if rows:
            self.db.executemany("INSERT INTO messages VALUES (?,?,?,?,?,?,?,?)", rows)
        if alerts:
            self.db.executemany(
                "INSERT INTO alerts (device_id, farm_id, room_id, kind, detail, ts) "
                "VALUES (?,?,?,?,?,?)",
                alerts,
            )
        return len(rows), bad, status

    def readback(self) -> dict[str, Any]:
        """Per device: messages received, highest seq, missing seq ranges, duplicates."""
        devices: dict[str, dict[str, Any]] = {}
        current: str | None = None
        seqs: list[int] = []

        def close() -> None:
            if current is None:
                return
            unique = sorted(set(seqs))
            missing = []
            expected = 0
            for seq in unique:
                if seq > expected:
                    missing.append([expected, seq - 1])
                expected = seq + 1
            devices[current] = {
                "received": len(unique),
                "highest_seq": unique[-1],
                "missing": missing,
                "duplicates": len(seqs) - len(unique),
                "seqs": _ranges(unique),
            }

        for device_id, seq in self.db.execute(
            "SELECT device_id, seq FROM messages ORDER BY device_id, seq"
        ):
            if device_id != current:
                close()
                current, seqs = device_id, []
            seqs.append(seq)
        close()
        received = sum(d["received"] for d in devices.values())
        duplicates = sum(d["duplicates"] for d in devices.values())
        return {
            "devices": devices,
            "received": received,
            "duplicates": duplicates,
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": self.rejected,
        }


def _ranges(values: list[int]) -> list[list[int]]:
    """[[first, last], ...] runs of consecutive integers (a compact seq list)."""
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return runs


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
        from .transports.mqtt import MqttSubscriber

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
