"""The reference backend's dashboard API: farms, a farm's rooms and their health, a room's
cough and climate series, a device's last message, alerts and their acknowledgement.

Every handler needs a logged-in user (:func:`protected`) and sees that user's farms only:
another tenant's farm, room, device or alert answers 404, as if it did not exist.
``--slow`` turns the room detail into the bottleneck a stress test should catch (an N+1:
a query per message).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from simulator.backend.accounts import User
from simulator.backend.schema import INT64_MAX, Refused
from simulator.backend.state import backend_of
from simulator.backend.store import Store

Handler = Callable[[Request, User], Awaitable[Response]]


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


def protected(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """``handler`` for logged-in users only (a live bearer token from ``/api/login``); a
    refused parameter answers its status with the reason."""

    async def guarded(request: Request) -> Response:
        user = backend_of(request).user(request)
        if user is None:
            return json_response({"error": "login required"}, 401)
        try:
            return await handler(request, user)
        except Refused as exc:
            return json_response({"error": str(exc)}, exc.status)

    return guarded


def _farms_clause(user: User, column: str = "farm_id") -> tuple[str, tuple[str, ...]]:
    """SQL restricting ``column`` to the user's farms (empty for a user of every farm)."""
    farms = user.farm_filter()
    if farms is None:
        return "", ()
    if not farms:
        return " AND 1=0", ()
    return f" AND {column} IN ({','.join('?' * len(farms))})", tuple(farms)


def _own_farm(request: Request, user: User) -> str:
    farm_id = request.path_params["farm_id"]
    if not user.owns(farm_id):
        raise Refused("no such farm", 404)
    return str(farm_id)


async def farms(request: Request, user: User) -> Response:
    backend = backend_of(request)
    clause, params = _farms_clause(user)
    rows = backend.store.db.execute(
        "SELECT farm_id, COUNT(DISTINCT device_id), COUNT(*) FROM messages WHERE 1=1"
        + clause
        + " GROUP BY farm_id",
        params,
    ).fetchall()
    names = {f.farm_id: f.name for f in backend.fleet.farms} if backend.fleet else {}
    return json_response(
        [{"farm_id": f, "name": names.get(f, f), "devices": d, "messages": n} for f, d, n in rows]
    )


async def farm(request: Request, user: User) -> Response:
    store = backend_of(request).store
    farm_id = _own_farm(request, user)
    rows = store.db.execute(
        "SELECT room_id, payload FROM messages WHERE farm_id = ? AND kind = 'daily' ORDER BY ts",
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
        colours[room_id] = orjson.loads(bytes(payload)).get("rehs_color") or "blue"
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


def _epoch_param(request: Request, name: str, default: float) -> float:
    """A ``from``/``to`` query parameter: epoch seconds, or 400 naming it."""
    text = request.query_params.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise Refused(f"{name}: expected epoch seconds, got {text[:40]!r}", 400) from None
    if not math.isfinite(value):
        raise Refused(f"{name}: expected a finite number of epoch seconds", 400)
    return value


def _room_in_farm(request: Request, farm_id: str, room_id: str) -> bool:
    """Whether ``room_id`` is a room of ``farm_id``: the backend's fleet says so, or a
    message from it said so."""
    backend = backend_of(request)
    if backend.fleet is not None and backend.room_farms.get(room_id) == farm_id:
        return True
    return bool(
        backend.store.db.execute(
            "SELECT 1 FROM messages WHERE room_id = ? AND farm_id = ? LIMIT 1", (room_id, farm_id)
        ).fetchone()
    )


async def room(request: Request, user: User) -> Response:
    store = backend_of(request).store
    farm_id = _own_farm(request, user)
    room_id = str(request.path_params["room_id"])
    now = time.time()
    start = _epoch_param(request, "from", 0.0)
    end = _epoch_param(request, "to", now * 2)
    if store.slow:
        rows = _room_rows_one_query_per_device(store, farm_id, room_id, start, end)
    else:
        rows = store.db.execute(
            "SELECT device_id, kind, ts, payload FROM messages "
            "WHERE room_id = ? AND farm_id = ? AND ts BETWEEN ? AND ? ORDER BY ts",
            (room_id, farm_id, start, end),
        ).fetchall()
    # A room with nothing in the window may still be one of the farm's; one that is not
    # (another farm's, or none) is not found.
    if not rows and not _room_in_farm(request, farm_id, room_id):
        return json_response({"error": "no such room in this farm"}, 404)
    coughs, climate = _room_series(rows)
    return json_response({"room_id": room_id, "coughs": coughs, "climate": climate})


def _room_rows_one_query_per_device(
    store: Store, farm_id: str, room_id: str, start: float, end: float
) -> list[Any]:
    """The bottleneck a stress test should catch, an N+1 as ORMs write it: the room's
    devices, then each device's whole history (without payloads), the chart's window
    picked in Python, and each message's payload loaded on its own (a lazy column). Fine
    on a fresh database; the queries per request grow with the data."""
    devices = [
        d
        for (d,) in store.db.execute(
            "SELECT DISTINCT device_id FROM messages WHERE room_id = ? AND farm_id = ?",
            (room_id, farm_id),
        )
    ]
    rows = []
    for device in devices:
        history = store.db.execute(
            "SELECT seq, ts FROM messages WHERE device_id = ? ORDER BY seq", (device,)
        ).fetchall()
        for seq, ts in history:
            if start <= ts <= end:
                rows += store.db.execute(
                    "SELECT device_id, kind, ts, payload FROM messages "
                    "WHERE device_id = ? AND seq = ? AND ts = ?",
                    (device, seq, ts),
                ).fetchall()
    rows.sort(key=lambda row: row[2])
    return rows


def _room_series(rows: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A room's rows as its two charts: coughs per summary, climate per reading."""
    coughs, climate = [], []
    for device_id, kind, ts, payload in rows:
        data = orjson.loads(bytes(payload))
        if kind == "summary" and isinstance(data.get("cough_count"), int):
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
    return coughs, climate


async def device(request: Request, user: User) -> Response:
    device_id = request.path_params["device_id"]
    row = (
        backend_of(request)
        .store.db.execute(
            "SELECT payload, COUNT(*) OVER (), farm_id FROM messages WHERE device_id = ? "
            "ORDER BY ts DESC LIMIT 1",
            (device_id,),
        )
        .fetchone()
    )
    if row is None or not user.owns(row[2]):
        return json_response({"error": "no such device"}, 404)
    return json_response(
        {"device_id": device_id, "last": orjson.loads(bytes(row[0])), "messages": row[1]}
    )


async def alerts(request: Request, user: User) -> Response:
    clause, params = _farms_clause(user)
    rows = (
        backend_of(request)
        .store.db.execute(
            "SELECT id, device_id, farm_id, room_id, kind, detail, ts, acknowledged FROM alerts "
            "WHERE 1=1" + clause + " ORDER BY ts DESC LIMIT 100",
            params,
        )
        .fetchall()
    )
    keys = ("id", "device_id", "farm_id", "room_id", "kind", "detail", "ts", "acknowledged")
    return json_response([dict(zip(keys, row, strict=True)) for row in rows])


async def acknowledge(request: Request, user: User) -> Response:
    text = str(request.path_params["alert_id"])
    if not (text.isascii() and text.isdigit()) or int(text) > INT64_MAX:
        return json_response({"error": "no such alert"}, 404)
    if user.role != "operator":
        return json_response({"error": "only an operator acknowledges alerts"}, 403)
    alert_id = int(text)
    clause, params = _farms_clause(user)
    changed = (
        backend_of(request)
        .store.db.execute(
            "UPDATE alerts SET acknowledged = 1 WHERE id = ?" + clause, (alert_id, *params)
        )
        .rowcount
    )
    if not changed:
        return json_response({"error": "no such alert"}, 404)
    return json_response({"id": alert_id, "acknowledged": True})
