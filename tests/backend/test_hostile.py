"""The reference backend against hostile input: logins that must fail, tenants that must
not see each other, tokens that expire, a read-back behind its own token, batches checked
whole against device credentials, bodies refused while they are read, and no 500."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator.backend.accounts import Accounts, User, hash_password, load_users
from simulator.backend.app import MAX_BODY, create_app
from simulator.errors import ConfigError

READBACK = "readback-token-for-the-tests-0123456789"
HASH = hash_password("correct horse")


def _message(device: str, farm: str, room: str, seq: int = 0, **fields: Any) -> dict[str, Any]:
    return {
        "device_id": device,
        "device_type": "climate_node",
        "farm_id": farm,
        "room_id": room,
        "fw": "2.7.0",
        "seq": seq,
        "ts": 1_700_000_000 + 300 * seq,
        "kind": "reading",
        "temp_c": 21.5,
        **fields,
    }


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(tmp_path: Path, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    """The backend with an operator of farm A, a viewer of farm B, the read-back token, and
    one hot reading from a room of each farm (so each farm has an alert)."""
    users = {
        "olga": User("olga", HASH, "operator", frozenset({"farm-a"})),
        "victor": User("victor", HASH, "viewer", frozenset({"farm-b"})),
    }
    accounts = Accounts(users, token_ttl=60.0, readback_token=READBACK, clock=clock)
    app = create_app(tmp_path / "b.db", accounts=accounts)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://b") as http:
        for device, farm, room in (("cn-a", "farm-a", "room-a"), ("cn-b", "farm-b", "room-b")):
            stored = await http.post("/ingest", json=_message(device, farm, room, temp_c=35.0))
            assert stored.status_code == 202, stored.text
        yield http


async def _login(client: httpx.AsyncClient, name: str) -> dict[str, str]:
    answer = await client.post("/api/login", json={"username": name, "password": "correct horse"})
    assert answer.status_code == 200, answer.text
    return {"authorization": f"Bearer {answer.json()['token']}"}


@pytest.mark.parametrize(
    "body",
    [
        {"username": "nobody", "password": None},
        {"username": "olga", "password": None},
        {"username": "nobody", "password": "correct horse"},
        {"username": "olga", "password": "wrong"},
        {"username": "olga"},
        {"username": ["olga"], "password": "correct horse"},
        {"username": "olga", "password": {"$ne": ""}},
        {"username": "olga", "password": "correct horse", "role": "operator"},
        None,
        [],
    ],
)
async def test_no_login_without_the_right_password(client: httpx.AsyncClient, body: object) -> None:
    """Unknown users, null or missing passwords, objects where strings belong and wrong
    passwords get no token (the login bypass answered a token to a null password)."""
    answer = await client.post("/api/login", json=body)
    assert answer.status_code in (400, 401), answer.text
    assert "token" not in answer.json()


async def test_each_user_sees_only_its_own_farms_on_every_path(client: httpx.AsyncClient) -> None:
    """Farm list, farm, room (also through another farm's path), device and alerts show a
    user its own farms only; another tenant's answer 404, as if they did not exist."""
    olga = await _login(client, "olga")
    victor = await _login(client, "victor")
    assert [f["farm_id"] for f in (await client.get("/api/farms", headers=olga)).json()] == [
        "farm-a"
    ]
    assert [f["farm_id"] for f in (await client.get("/api/farms", headers=victor)).json()] == [
        "farm-b"
    ]
    forbidden = [
        "/api/farms/farm-b",
        "/api/farms/farm-b/rooms/room-b",
        "/api/farms/farm-a/rooms/room-b",  # another farm's room under one's own farm
        "/api/farms/farm-a/rooms/no-such-room",
        "/api/devices/cn-b",
    ]
    for path in forbidden:
        assert (await client.get(path, headers=olga)).status_code == 404, path
    assert (await client.get("/api/farms/farm-a", headers=olga)).status_code == 200
    room = await client.get("/api/farms/farm-a/rooms/room-a", headers=olga)
    assert room.status_code == 200
    assert [p["device_id"] for p in room.json()["climate"]] == ["cn-a"]
    assert (await client.get("/api/devices/cn-a", headers=olga)).status_code == 200
    alerts = (await client.get("/api/alerts", headers=olga)).json()
    assert {a["farm_id"] for a in alerts} == {"farm-a"}


async def test_only_an_operator_acknowledges_and_only_its_farms_alerts(
    client: httpx.AsyncClient,
) -> None:
    """A viewer may not acknowledge (403); an operator acknowledges its farm's alert but
    not another farm's (404), nor an id past 64 bits (404, not 500)."""
    olga = await _login(client, "olga")
    victor = await _login(client, "victor")
    own = (await client.get("/api/alerts", headers=olga)).json()[0]["id"]
    other = (await client.get("/api/alerts", headers=victor)).json()[0]["id"]
    assert (await client.post(f"/api/alerts/{other}/ack", headers=victor)).status_code == 403
    assert (await client.post(f"/api/alerts/{other}/ack", headers=olga)).status_code == 404
    assert (await client.post(f"/api/alerts/{own}/ack", headers=olga)).json() == {
        "id": own,
        "acknowledged": True,
    }
    for alert_id in ("99999999999999999999999", "-1", "１", "x"):
        answer = await client.post(f"/api/alerts/{alert_id}/ack", headers=olga)
        assert answer.status_code == 404, alert_id


async def test_session_tokens_expire(client: httpx.AsyncClient, clock: Clock) -> None:
    """A token works for its lifetime and not after it."""
    olga = await _login(client, "olga")
    clock.now += 59.0
    assert (await client.get("/api/farms", headers=olga)).status_code == 200
    clock.now += 2.0
    assert (await client.get("/api/farms", headers=olga)).status_code == 401


async def test_the_read_back_wants_its_own_token(client: httpx.AsyncClient) -> None:
    """Neither no token, a wrong one, nor a dashboard user's token reads back; the
    read-back token does (and is no dashboard login)."""
    olga = await _login(client, "olga")
    for headers in ({}, {"authorization": "Bearer wrong"}, olga):
        assert (await client.get("/api/readback", headers=headers)).status_code == 401
        assert (await client.get("/api/readback/mark", headers=headers)).status_code == 401
    token = {"authorization": f"Bearer {READBACK}"}
    assert (await client.get("/api/readback", headers=token)).json()["received"] == 2
    assert (await client.get("/api/farms", headers=token)).status_code == 401


async def test_read_back_is_off_without_a_token(tmp_path: Path) -> None:
    """A backend given no read-back token answers the read-back 403, saying how to turn it
    on."""
    app = create_app(tmp_path / "b.db")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c:
        answer = await c.get("/api/readback", headers={"authorization": "Bearer anything"})
    assert answer.status_code == 403
    assert "--readback-token" in answer.json()["error"]


async def test_a_batch_is_checked_whole_against_the_devices_credentials(tmp_path: Path) -> None:
    """A device's token may post its own messages; a batch that holds another device's (or
    an invented device's) message among its own is refused whole: nothing of it stored."""
    credentials = {"Bearer tok-a": "cn-a", "Bearer tok-b": "cn-b"}
    accounts = Accounts({}, readback_token=READBACK)
    app = create_app(tmp_path / "b.db", accounts=accounts, device_credentials=credentials)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c:
        own = {"authorization": "Bearer tok-a"}
        mine = [_message("cn-a", "farm-a", "room-a", seq) for seq in range(3)]
        for intruder in ("cn-b", "cn-invented"):
            batch = [*mine, _message(intruder, "farm-a", "room-a", 9)]
            assert (await c.post("/ingest", json=batch, headers=own)).status_code == 403
        assert (await c.post("/ingest", json=mine[0], headers=own)).status_code == 202
        unknown = {"authorization": "Bearer nope"}
        assert (await c.post("/ingest", json=mine[1], headers=unknown)).status_code == 401
        books = await c.get("/api/readback", headers={"authorization": f"Bearer {READBACK}"})
    assert books.json()["received"] == 1
    assert books.json()["devices"]["cn-a"]["seqs"] == [[0, 0]]


async def test_a_large_body_is_refused_while_it_is_read(client: httpx.AsyncClient) -> None:
    """A body past the limit is refused by its Content-Length before it is read, and a
    streamed one (no length) after at most the limit plus a chunk has been read."""
    declared = await client.post(
        "/ingest", content=b"x" * 10, headers={"content-length": str(500 << 20)}
    )
    assert declared.status_code == 413
    chunk = 64 << 10
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(8000):  # 500 MiB if all of it were read
            sent += chunk
            yield b"x" * chunk

    streamed = await client.post("/ingest", content=endless())
    assert streamed.status_code == 413
    assert sent <= MAX_BODY + 2 * chunk


def _hostile() -> Iterator[tuple[str, Any]]:
    """Messages that once answered 500 or were stored wrongly."""
    good = _message("cn-h", "farm-a", "room-a")
    yield "seq past 64 bits", {**good, "seq": 18446744073709551615}
    yield "seq a huge integer", {**good, "seq": 10**30}
    yield "ts past 64 bits", {**good, "ts": 10**30}
    yield "ts past year 9999", {**good, "ts": "10000-01-01T00:00:00Z"}
    yield "device_id an object", {**good, "device_id": {"$gt": ""}}
    yield "farm_id a list", {**good, "farm_id": ["farm-a"]}
    yield "room_id a number", {**good, "room_id": 7}
    yield "seq a string", {**good, "seq": "1"}
    yield "seq a boolean", {**good, "seq": True}
    yield "temp_c a string", {**good, "temp_c": "hot"}
    yield "cough_count negative", {**good, "cough_count": -1}
    yield "rehs out of range", {**good, "rehs": 1000}
    yield "device_id empty", {**good, "device_id": ""}
    yield "device_id long", {**good, "device_id": "d" * 10_000}


@pytest.mark.parametrize(("name", "message"), list(_hostile()), ids=[n for n, _ in _hostile()])
async def test_wrong_types_and_sizes_are_refused_not_500(
    client: httpx.AsyncClient, name: str, message: Any
) -> None:
    """Each message that once answered 500 (or was stored) is refused with 422, alone and
    in a batch beside a good message, which is stored."""
    alone = await client.post("/ingest", json=message)
    assert alone.status_code == 422, alone.text
    good = _message("cn-h", "farm-a", "room-a", 5)
    batch = await client.post("/ingest", json=[good, message])
    assert batch.status_code == 207, batch.text
    assert batch.json()["stored"] == 1


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 5000 + b"]" * 5000,
        b'{"a":' * 3000 + b"1" + b"}" * 3000,
        b"\xff\xfe\x00",
        b"",
        b"[1, 2, 3]",
        b'"just a string"',
        b"1e999",
    ],
)
async def test_garbage_bodies_are_4xx(client: httpx.AsyncClient, body: bytes) -> None:
    """Deep nesting, bytes that are not UTF-8, empty bodies and JSON that is not a message
    are refused with 4xx."""
    answer = await client.post("/ingest", content=body)
    assert 400 <= answer.status_code < 500, answer.text


@pytest.mark.parametrize(
    "query",
    ["from=abc", "to=nan", "from=inf", "from=1e999", "to=%00", "from=" + "9" * 400],
)
async def test_garbage_query_parameters_are_400(client: httpx.AsyncClient, query: str) -> None:
    """A room chart with from/to that are not finite epoch seconds answers 400 naming the
    parameter."""
    olga = await _login(client, "olga")
    answer = await client.get(f"/api/farms/farm-a/rooms/room-a?{query}", headers=olga)
    assert answer.status_code == 400, answer.text
    assert query.split("=")[0] in answer.json()["error"]


def test_a_users_file_needs_hashes_roles_and_farms(tmp_path: Path) -> None:
    """A users file loads hashed users with their roles and farms; a plain password, an
    unknown role or a missing farms key is refused naming the file and key."""
    good = tmp_path / "users.toml"
    good.write_text(
        f'[users.olga]\npassword = "{HASH}"\nrole = "operator"\nfarms = "*"\n'
        f'[users.victor]\npassword = "{HASH}"\nfarms = ["farm-b"]\n'
    )
    users = load_users(good)
    assert users["olga"].role == "operator"
    assert users["olga"].farms is None
    assert users["victor"].role == "viewer"
    assert users["victor"].farms == frozenset({"farm-b"})
    cases = {
        'password = "correct horse"\nfarms = "*"': "users.olga.password",
        f'password = "{HASH}"\nrole = "admin"\nfarms = "*"': "users.olga.role",
        f'password = "{HASH}"': "users.olga.farms",
    }
    for body, where in cases.items():
        bad = tmp_path / "bad.toml"
        bad.write_text(f"[users.olga]\n{body}\n")
        with pytest.raises(ConfigError) as error:
            load_users(bad)
        assert str(error.value).startswith(f"{bad}: {where}:"), error.value
