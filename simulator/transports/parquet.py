"""History as Parquet (``--output NAME.parquet``, pyarrow: ``pip install 'barnstorm[parquet]'``).

One row per message: ``topic`` and every payload field as a column of its own, typed
(the envelope's ``device_id``, ``seq``, ``ts`` ... as much as the readings), in row groups
of consecutive messages (so each covers a window of simulated time). Fields a message
lacks are null; ``_keys`` holds each message's own fields in their order, so a reader
gives back the very payload (a field present as null stays present). A field whose values
have no one type across the file (``ts``: text from new firmware, epoch seconds from
old) is kept as each value's JSON text, and the file's metadata names those columns. A
payload that is no JSON object at all (a scenario's malformed ones) is its text under
``_raw``.

Row groups are written as they fill, each to a part file of its own beside the output;
closing the history unifies their schemas and writes the one file (the same join takes
the shards of a parallel history).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from simulator.errors import ConfigError, SendError
from simulator.messages import Message, Outcome
from simulator.transports.base import ResultSink, Transport

#: messages per row group.
ROWS_PER_GROUP = 100_000
#: the metadata key that names the columns kept as JSON text.
JSON_COLUMNS = b"barnstorm.json_columns"
KEYS = "_keys"
#: the column of a message that is no JSON object (a scenario's malformed payloads), as
#: the text it was; its ``_keys`` is null.
RAW = "_raw"
_FLUSH_AGE = 5.0  # seconds: a slow run's counts do not wait for a full group


def need_pyarrow(flag: str = "--output") -> Any:
    """pyarrow, or a one-line error saying how to install it."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ConfigError(flag, "Parquet needs pyarrow: pip install 'barnstorm[parquet]'") from None
    return pyarrow


def group_table(rows: Sequence[tuple[str, dict[str, Any]]]) -> Any:
    """A row group's table: topic, ``_keys`` and a column per field (JSON text where
    the values have no one type)."""
    pa = need_pyarrow()
    names: dict[str, None] = {}
    for _, payload in rows:
        names.update(dict.fromkeys(payload))
    columns: dict[str, Any] = {
        "topic": pa.array([topic for topic, _ in rows], pa.string()),
        KEYS: pa.array(
            [None if RAW in payload else ",".join(payload) for _, payload in rows], pa.string()
        ),
    }
    as_json = []
    for name in names:
        values = [payload.get(name) for _, payload in rows]
        try:
            columns[name] = pa.array(values)
            if pa.types.is_struct(columns[name].type) or pa.types.is_list(columns[name].type):
                raise TypeError
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            columns[name] = pa.array([_json(value) for value in values], pa.string())
            as_json.append(name)
    table = pa.table(columns)
    return table.replace_schema_metadata({JSON_COLUMNS: json.dumps(as_json).encode()})


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _json_columns(schema: Any) -> set[str]:
    metadata = schema.metadata or {}
    return set(json.loads(metadata.get(JSON_COLUMNS, b"[]")))


def join(parts: Sequence[Path], output: Path) -> None:
    """Write the row groups of ``parts`` (Parquet files, in order) as one file: the
    schemas unified (integers with floats become floats; a column whose types differ
    otherwise, or that a part kept as JSON text, becomes JSON text in all)."""
    pa = need_pyarrow()
    import pyarrow.parquet as pq

    schemas = [pq.read_schema(part) for part in parts]
    types: dict[str, set[Any]] = {}
    as_json: set[str] = set()
    for schema in schemas:
        as_json |= _json_columns(schema)
        for field in schema:
            types.setdefault(field.name, set()).add(field.type)
    fields = []
    for name, seen in types.items():
        kinds = {t for t in seen if not pa.types.is_null(t)}
        if name in as_json or (
            len(kinds) > 1
            and not all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in kinds)
        ):
            as_json.add(name)
            fields.append(pa.field(name, pa.string()))
        elif any(pa.types.is_floating(t) for t in kinds):
            fields.append(pa.field(name, pa.float64()))
        else:
            fields.append(pa.field(name, kinds.pop() if kinds else pa.null()))
    schema = pa.schema(fields, metadata={JSON_COLUMNS: json.dumps(sorted(as_json)).encode()})
    with pq.ParquetWriter(output, schema, compression="zstd") as writer:
        for part, part_schema in zip(parts, schemas, strict=True):
            kept = _json_columns(part_schema)
            source = pq.ParquetFile(part)
            for index in range(source.num_row_groups):
                table = source.read_row_group(index)
                arrays = []
                for field in schema:
                    if field.name not in table.column_names:
                        arrays.append(pa.nulls(table.num_rows, field.type))
                        continue
                    column = table.column(field.name)
                    if field.name in as_json and field.name not in kept:
                        column = pa.array(
                            [_json(value) for value in column.to_pylist()], pa.string()
                        )
                    arrays.append(column.cast(field.type))
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))


def decoded(payload: bytes) -> dict[str, Any]:
    """A message's payload as its row holds it: the JSON object, or, for a payload that
    is none (malformed on purpose), its text under ``_raw``."""
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        value = None
    if isinstance(value, dict) and RAW not in value:
        return value
    return {RAW: payload.decode("utf-8", "replace")}


def read_payloads(path: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
    """(topic, payload) of every message of a Parquet history, as written: the JSON
    object, or the text of a payload that was none."""
    need_pyarrow(str(path))
    import pyarrow.parquet as pq

    try:
        source = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow's errors have no common base worth naming
        raise ConfigError(str(path), f"not a Parquet file ({exc})") from None
    as_json = _json_columns(source.schema_arrow)
    if KEYS not in source.schema_arrow.names:
        raise ConfigError(str(path), "not a barnstorm history (no _keys column)")
    for index in range(source.num_row_groups):
        table = source.read_row_group(index).to_pydict()
        topics, keys = table["topic"], table[KEYS]
        raw = table.get(RAW)
        for row, names in enumerate(keys):
            if names is None and raw is not None and raw[row] is not None:
                yield topics[row], raw[row]
                continue
            payload = {}
            for name in names.split(",") if names else ():
                value = table[name][row]
                payload[name] = orjson.loads(value) if name in as_json and value else value
            yield topics[row], payload


class ParquetTransport(Transport):
    """Writes the history as Parquet to ``path``."""

    name = "parquet"

    def __init__(self, sink: ResultSink, path: Path) -> None:
        super().__init__(sink)
        self.path = path
        self.folder = path.with_name(f".{path.name}.groups")
        self._rows: list[tuple[str, dict[str, Any]]] = []
        self._pending: list[Message] = []
        self._parts: list[Path] = []
        self._flushed_at = time.monotonic()
        self.error: str | None = None

    async def open(self) -> None:
        need_pyarrow()
        try:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True)
            self.path.touch()
        except OSError as exc:
            raise ConfigError("--output", f"cannot write {self.path}: {exc.strerror}") from None

    def send(self, message: Message) -> None:
        self.send_many([message])

    def send_many(self, messages: list[Message]) -> None:
        self.check_open()
        self._rows.extend((m.topic, decoded(m.payload)) for m in messages)
        self._pending.extend(messages)
        if len(self._rows) >= ROWS_PER_GROUP or time.monotonic() - self._flushed_at > _FLUSH_AGE:
            self._flush()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def _flush(self) -> None:
        self._flushed_at = time.monotonic()
        if not self._rows:
            return
        import pyarrow.parquet as pq

        rows, self._rows = self._rows, []
        pending, self._pending = self._pending, []
        part = self.folder / f"{len(self._parts):06d}.parquet"
        try:
            pq.write_table(group_table(rows), part, compression="zstd")
        except OSError as exc:
            for message in pending:
                self.sink.message_sent(message)
                self.sink.message_done(message, Outcome.FAILED, SendError.kind)
            self.error = f"cannot write {part}: {exc.strerror or exc}"
            return
        self._parts.append(part)
        self.sink.messages_written(pending)

    async def drain(self, timeout: float) -> None:
        self._flush()

    async def close(self) -> None:
        if self._state == "closed":  # closed once already: the file is written
            return
        self._flush()
        try:
            if self._parts:
                join(self._parts, self.path)
            else:  # no message: a valid file with no rows
                pa = need_pyarrow()
                import pyarrow.parquet as pq

                empty = pa.table(
                    {"topic": pa.array([], pa.string()), KEYS: pa.array([], pa.string())}
                )
                pq.write_table(empty, self.path)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
        await super().close()
