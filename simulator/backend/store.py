"""The reference backend's store: message validation, the schema, and the SQLite or
PostgreSQL database behind ingest, dashboards and read-back.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from simulator.backend.timing import record_query
from simulator.units import parse_instant

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


#: how long opening a SQLite file waits for other processes opening it at the same time.
_SQLITE_WAIT = 10.0


def _sqlite_wal(target: str) -> sqlite3.Connection:
    """A connection to the SQLite file ``target`` in WAL mode. Two processes that open a new
    file at once race to switch it to WAL, and SQLite answers the one that loses "database
    is locked" at once (the switch does not wait on the busy timeout): it tries again."""
    connection = sqlite3.connect(
        target, check_same_thread=False, isolation_level=None, timeout=_SQLITE_WAIT
    )
    deadline = time.monotonic() + _SQLITE_WAIT
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                connection.close()
                raise
            time.sleep(0.01)
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


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
            self._sqlite = _sqlite_wal(target)
            blob, serial = "BLOB", "INTEGER PRIMARY KEY"
        for statement in _SCHEMA:
            self.execute(statement.format(blob=blob, serial=serial))

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        """Run one statement and fetch what it returns (timed whole, for Server-Timing);
        the result answers fetchone/fetchall, iteration and rowcount."""
        started = time.perf_counter()
        try:
            cursor: Any = (
                self._pg.execute(self._sql(sql), params)
                if self.postgres
                else self._sqlite.execute(sql, params)
            )
            rows = cursor.fetchall() if cursor.description is not None else []
            return Rows(rows, cursor.rowcount)
        finally:
            record_query(time.perf_counter() - started)

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        started = time.perf_counter()
        try:
            if self.postgres:
                with self._pg.cursor() as cursor:
                    cursor.executemany(self._sql(sql), rows)
            else:
                self._sqlite.executemany(sql, rows)
        finally:
            record_query(time.perf_counter() - started)


@dataclass
class Rows:
    """A statement's result, fetched: rows, and how many rows it changed."""

    rows: list[Any]
    rowcount: int

    def fetchall(self) -> list[Any]:
        return self.rows

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)


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
    #: read-back marks (the backend's time, as text) and the rejections counted by then.
    marks: dict[str, dict[str, int]] = field(default_factory=dict)
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

    def mark(self) -> str:
        """A point in this backend's own time from which a run's read-back counts, so that
        a run reconciles against what arrived during it, not against earlier runs (and no
        clock but the backend's is involved). Rows keep their arrival time, so a mark holds
        across a restart of the backend."""
        mark = repr(time.time())
        self.marks[mark] = dict(self.rejected)
        return mark

    def readback(self, since: str | None = None) -> dict[str, Any]:
        """Per device: messages received, highest seq, missing seq ranges, duplicates;
        with ``since`` (a :meth:`mark`), only what arrived from then on."""
        since_time: float | None = None
        if since is not None:
            try:
                since_time = float(since)
            except ValueError:
                raise Invalid(f"a read-back mark is a time, not {since!r}", 400) from None
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

        query = "SELECT device_id, seq FROM messages"
        params: tuple[Any, ...] = ()
        if since_time is not None:
            query, params = query + " WHERE received >= ?", (since_time,)
        for device_id, seq in self.db.execute(query + " ORDER BY device_id, seq", params):
            if device_id != current:
                close()
                current, seqs = device_id, []
            seqs.append(seq)
        close()
        # Rejections are counted in memory: from the mark's snapshot on, or, when this
        # process never took that mark (it started after it: a restart), all of its own.
        before = self.marks.get(since, {}) if since is not None else {}
        rejected = {
            reason: count - before.get(reason, 0)
            for reason, count in self.rejected.items()
            if count > before.get(reason, 0)
        }
        received = sum(d["received"] for d in devices.values())
        duplicates = sum(d["duplicates"] for d in devices.values())
        return {
            "devices": devices,
            "received": received,
            "duplicates": duplicates,
            "rejected": sum(rejected.values()),
            "rejected_by_reason": rejected,
            "since": since,
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
