"""The reference backend's store: message validation, the schema, and the SQLite or
PostgreSQL database behind ingest, dashboards and read-back.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from simulator.backend.schema import Envelope, Refused, envelope_of
from simulator.backend.timing import record_query
from simulator.errors import ConfigError, ConnectError
from simulator.redact import redact_url

MAX_MESSAGE = 16 * 1024  # bytes of one message


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

            try:
                self._pg = psycopg.connect(target, autocommit=True, connect_timeout=10)
            except psycopg.Error as exc:
                detail = one_line(str(exc)).removeprefix("connection failed: ")
                raise ConnectError(f"cannot use {redact_url(target)}: {detail}") from None
            blob, serial = "BYTEA", "BIGSERIAL PRIMARY KEY"
        else:
            try:
                self._sqlite = _sqlite_wal(target)
            except sqlite3.Error as exc:
                raise ConfigError("--database", f"cannot open {target} ({exc})") from None
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
                else self._sqlite.cursor().execute(sql, params)  # a cursor: traced (--otlp)
            )
            rows = cursor.fetchall() if cursor.description is not None else []
            return Rows(rows, cursor.rowcount)
        finally:
            record_query(time.perf_counter() - started)

    def write(self, statements: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
        """Run each statement over its rows in one transaction: every row is written, or,
        when the database fails part-way, none is (and the error rises)."""
        started = time.perf_counter()
        try:
            if self.postgres:
                with self._pg.transaction(), self._pg.cursor() as cursor:
                    for sql, rows in statements:
                        if rows:
                            cursor.executemany(self._sql(sql), rows)
            else:
                with self._sqlite:  # BEGIN ... COMMIT, or ROLLBACK on an error
                    lite = self._sqlite.cursor()
                    lite.execute("BEGIN")
                    for sql, rows in statements:
                        if rows:
                            lite.executemany(sql, rows)
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


def one_line(text: str) -> str:
    return " ".join(text.split())


def decode(raw: bytes) -> object:
    """One message's bytes (an MQTT payload) as JSON; :class:`Refused` when it is not."""
    if len(raw) > MAX_MESSAGE:
        raise Refused("message too large", 413)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Refused("not JSON", 400) from None


@dataclass
class Ingested:
    """What one ingest call did: messages stored, and refusals by reason."""

    stored: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    #: the HTTP status of the first refusal (0: none).
    status: int = 0

    @property
    def rejected(self) -> int:
        return sum(self.reasons.values())

    def refuse(self, reason: str, status: int) -> None:
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        self.status = self.status or status


def _row(message: Envelope, received: float, payload: bytes) -> tuple[Any, ...]:
    return (
        message.device_id,
        message.seq,
        message.kind,
        message.farm_id,
        message.room_id,
        message.epoch(),
        received,
        payload,
    )


def _alerts(message: Envelope) -> list[tuple[Any, ...]]:
    """The alerts a message raises: a red health score, a room above the alarm."""
    where = (message.device_id, message.farm_id, message.room_id)
    alerts = []
    if message.rehs_color == "red":
        detail = f"respiratory health score {message.rehs}"
        alerts.append((*where, "red_score", detail, message.epoch()))
    if message.temp_c is not None and message.temp_c > TEMPERATURE_ALARM_C:
        alerts.append((*where, "temperature", f"{message.temp_c} °C", message.epoch()))
    return alerts


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

    def ingest(self, items: Iterable[object]) -> Ingested:
        """Check every message (decoded JSON, or raw bytes from MQTT), then store the valid
        ones in one transaction: all of them or, if the database fails, none."""
        result = Ingested()
        rows: list[tuple[Any, ...]] = []
        alerts: list[tuple[Any, ...]] = []
        now = time.time()
        for item in items:
            try:
                data = decode(item) if isinstance(item, bytes) else item
                message = envelope_of(data)
                payload = orjson.dumps(data)
                if len(payload) > MAX_MESSAGE:
                    raise Refused("message too large", 413)
            except Refused as exc:
                result.refuse(str(exc), exc.status)
                continue
            rows.append(_row(message, now, payload))
            alerts += _alerts(message)
        if rows:
            self.db.write(
                [
                    ("INSERT INTO messages VALUES (?,?,?,?,?,?,?,?)", rows),
                    (
                        "INSERT INTO alerts (device_id, farm_id, room_id, kind, detail, ts) "
                        "VALUES (?,?,?,?,?,?)",
                        alerts,
                    ),
                ]
            )
            result.stored = len(rows)
        for reason, count in result.reasons.items():
            self.rejected[reason] = self.rejected.get(reason, 0) + count
        return result

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
                if not math.isfinite(since_time):
                    raise ValueError(since)
            except ValueError:
                raise Refused(f"a read-back mark is a time, not {since[:40]!r}", 400) from None
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
