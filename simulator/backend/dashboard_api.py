"""The reference backend's dashboard API: farms, a farm's rooms and their health, a room's
cough and climate series, a device's last message, alerts and their acknowledgement.

Every handler needs a logged-in user (:func:`protected`). ``--slow`` turns the room
detail into the bottleneck a stress test should catch (an N+1: a query per message).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from simulator.backend.state import backend_of
from simulator.backend.store import Store

Handler = Callable[[Request], Awaitable[Response]]


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


def protected(handler: Handler) -> Handler:
    """``handler`` for logged-in users only (a bearer token from ``/api/login``)."""

    async def guarded(request: Request) -> Response:
        if not backend_of(request).authorised(request):
            return json_response({"error": "login required"}, 401)
        return await handler(request)

    return guarded


async def farms(request: Request) -> Response:
    backend = backend_of(request)
    rows = backend.store.db.execute(
        "SELECT farm_id, COUNT(DISTINCT device_id), COUNT(*) FROM messages GROUP BY farm_id"
    ).fetchall()
    names = {f.farm_id: f.name for f in backend.fleet.farms} if backend.fleet else {}
    return json_response(
        [{"farm_id": f, "name": names.get(f, f), "devices": d, "messages": n} for f, d, n in rows]
    )


async def farm(request: Request) -> Response:
    store = backend_of(request).store
    farm_id = request.path_params["farm_id"]
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
    store = backend_of(request).store
    room_id = request.path_params["room_id"]
    now = time.time()
    start = float(request.query_params.get("from", 0) or 0)
    end = float(request.query_params.get("to", now * 2) or now * 2)
    if store.slow:
        rows = _room_rows_one_query_per_device(store, room_id, start, end)
    else:
        rows = store.db.execute(
            "SELECT device_id, kind, ts, payload FROM messages "
            "WHERE room_id = ? AND ts BETWEEN ? AND ? ORDER BY ts",
            (room_id, start, end),
        ).fetchall()
    coughs, climate = _room_series(rows)
    return json_response({"room_id": room_id, "coughs": coughs, "climate": climate})


def _room_rows_one_query_per_device(
    store: Store, room_id: str, start: float, end: float
) -> list[Any]:
    """The bottleneck a stress test should catch, an N+1 as ORMs write it: the room's
    devices, then each device's whole history (without payloads), the chart's window
    picked in Python, and each message's payload loaded on its own (a lazy column). Fine
    on a fresh database; the queries per request grow with the data."""
    devices = [
        d
        for (d,) in store.db.execute(
            "SELECT DISTINCT device_id FROM messages WHERE room_id = ?", (room_id,)
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
    return coughs, climate


async def device(request: Request) -> Response:
    device_id = request.path_params["device_id"]
    row = (
        backend_of(request)
        .store.db.execute(
            "SELECT payload, COUNT(*) OVER () FROM messages WHERE device_id = ? "
            "ORDER BY ts DESC LIMIT 1",
            (device_id,),
        )
        .fetchone()
    )
    if row is None:
        return json_response({"error": "no such device"}, 404)
    return json_response({"device_id": device_id, "last": orjson.loads(row[0]), "messages": row[1]})


async def alerts(request: Request) -> Response:
    rows = (
        backend_of(request)
        .store.db.execute(
            "SELECT id, device_id, farm_id, room_id, kind, detail, ts, acknowledged FROM alerts "
            "ORDER BY ts DESC LIMIT 100"
        )
        .fetchall()
    )
    keys = ("id", "device_id", "farm_id", "room_id", "kind", "detail", "ts", "acknowledged")
    return json_response([dict(zip(keys, row, strict=True)) for row in rows])


async def acknowledge(request: Request) -> Response:
    alert_id = int(request.path_params["alert_id"])
    changed = (
        backend_of(request)
        .store.db.execute("UPDATE alerts SET acknowledged = 1 WHERE id = ?", (alert_id,))
        .rowcount
    )
    return json_response({"id": alert_id, "acknowledged": bool(changed)}, 200 if changed else 404)
