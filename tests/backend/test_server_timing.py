"""The reference backend's Server-Timing: every response says its database time and
queries; ingest adds its store time; the slow room chart's N+1 grows with the data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from simulator.backend.app import create_app
from simulator.metrics.server_timing import parse, queries_of

ROOM = "farm-00001-s1-r01"


def _summary(seq: int, device: str = "cm-1") -> dict[str, Any]:
    return {
        "device_id": device,
        "device_type": "cough_monitor",
        "farm_id": "farm-00001",
        "room_id": ROOM,
        "fw": "4.2.1",
        "seq": seq,
        "ts": 1_700_000_000 + 900 * seq,
        "kind": "summary",
        "cough_count": seq,
    }


async def _room_queries(client: httpx.AsyncClient, token: str) -> int:
    response = await client.get(
        f"/api/farms/farm-00001/rooms/{ROOM}", headers={"authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    count = queries_of(parse(response.headers["server-timing"]))
    assert count is not None
    return count


async def _client(database: Path, slow: bool) -> tuple[httpx.AsyncClient, str]:
    app = create_app(database, slow=slow)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b")
    login = await client.post("/api/login", json={"username": "farmer", "password": "barnstorm"})
    return client, login.json()["token"]


async def test_every_response_says_where_its_time_went(tmp_path: Path) -> None:
    """Ingest answers with db (one insert), store and app times; a dashboard request with
    its query count; a refused request still carries the header."""
    client, token = await _client(tmp_path / "b.db", slow=False)
    try:
        stored = await client.post("/ingest", json=[_summary(0), _summary(1)])
        metrics = parse(stored.headers["server-timing"])
        assert set(metrics) == {"db", "store", "app", "total"}
        assert queries_of(metrics) == 1
        assert all(duration is not None and duration >= 0 for duration, _ in metrics.values())
        total = metrics["total"][0]
        assert total is not None
        assert total >= (metrics["db"][0] or 0.0)
        farms = await client.get("/api/farms", headers={"authorization": f"Bearer {token}"})
        assert queries_of(parse(farms.headers["server-timing"])) == 1
        refused = await client.get("/api/farms")
        assert refused.status_code == 401
        assert queries_of(parse(refused.headers["server-timing"])) == 0
    finally:
        await client.aclose()


async def test_the_slow_room_chart_queries_once_per_message(tmp_path: Path) -> None:
    """On the normal backend the room chart is one query however much data there is; on the
    slow one it is the N+1: two queries per device plus one per message of the chart, so
    three more messages are three more queries."""
    normal, normal_token = await _client(tmp_path / "n.db", slow=False)
    slow, slow_token = await _client(tmp_path / "s.db", slow=True)
    try:
        for client in (normal, slow):
            await client.post("/ingest", json=[_summary(i) for i in range(3)])
            await client.post("/ingest", json=[_summary(i, "cm-2") for i in range(2)])
        assert await _room_queries(normal, normal_token) == 1
        assert await _room_queries(slow, slow_token) == 1 + 2 + 5
        for client in (normal, slow):
            await client.post("/ingest", json=[_summary(i) for i in range(3, 6)])
        assert await _room_queries(normal, normal_token) == 1
        assert await _room_queries(slow, slow_token) == 1 + 2 + 8
    finally:
        await normal.aclose()
        await slow.aclose()
