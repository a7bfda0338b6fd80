"""History as Parquet: each field a typed column, the payload given back as written
(fields a message lacks stay absent, a null stays present, the order of its fields kept),
a field of mixed types kept as JSON text, and the row groups of several parts joined
into one file under one schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from simulator.transports.parquet import (
    JSON_COLUMNS,
    decoded,
    group_table,
    join,
    read_payloads,
)

OLD = {"device_id": "cm-1", "seq": 1, "ts": 1735689600, "sound_db": 70.5, "rehs": None}
NEW = {"device_id": "cm-2", "seq": 2, "ts": "2025-01-01T00:00:00Z", "sound_leq_dba": 71}
GATEWAY = {"device_id": "gw-1", "seq": 3, "uptime_s": 120, "online": True}


def _write(path: Path, rows: list[tuple[str, dict[str, Any]]]) -> Path:
    pq.write_table(group_table(rows), path)
    return path


def test_a_group_gives_back_every_payload_as_written(tmp_path: Path) -> None:
    """Absent fields stay absent, a null stays a null, the field order is kept, and
    numbers, text and booleans keep their type."""
    rows = [("t/old", OLD), ("t/new", NEW), ("t/gw", GATEWAY)]
    path = _write(tmp_path / "one.parquet", rows)
    back = list(read_payloads(path))
    assert back == rows
    assert [list(payload) for _, payload in back] == [list(p) for _, p in rows]
    schema = pq.read_schema(path)
    assert schema.field("seq").type == pa.int64()
    assert schema.field("online").type == pa.bool_()
    assert schema.field("sound_db").type == pa.float64()


def test_a_field_of_mixed_types_is_kept_as_json_text(tmp_path: Path) -> None:
    """ts as epoch seconds from old firmware and as text from new: one text column of
    JSON, named in the file's metadata, read back as the numbers and text they were."""
    path = _write(tmp_path / "mixed.parquet", [("a", OLD), ("b", NEW)])
    schema = pq.read_schema(path)
    assert schema.field("ts").type == pa.string()
    assert b"ts" in schema.metadata[JSON_COLUMNS]
    payloads = [payload for _, payload in read_payloads(path)]
    assert [p["ts"] for p in payloads if isinstance(p, dict)] == [OLD["ts"], NEW["ts"]]


def test_parts_of_different_schemas_join_into_one_file(tmp_path: Path) -> None:
    """A part where ts was text and one where it was a number, a part where an integer
    field turned float, a part without some fields: one file, one schema (ts as JSON
    text, the field as float), every payload as it was, in order."""
    first = _write(tmp_path / "a.parquet", [("a", NEW), ("g", GATEWAY)])
    second = _write(tmp_path / "b.parquet", [("b", OLD), ("g2", {**GATEWAY, "uptime_s": 1.5})])
    out = tmp_path / "joined.parquet"
    join([first, second], out)
    rows = list(read_payloads(out))
    assert rows == [("a", NEW), ("g", GATEWAY), ("b", OLD), ("g2", {**GATEWAY, "uptime_s": 1.5})]
    schema = pq.read_schema(out)
    assert schema.field("ts").type == pa.string()
    assert schema.field("uptime_s").type == pa.float64()
    assert pq.ParquetFile(out).num_row_groups == 2


def test_a_payload_that_is_no_json_object_is_kept_as_its_text(tmp_path: Path) -> None:
    """A scenario's malformed payloads (not JSON, cut short, empty, a JSON list) are rows
    of their own: their text under _raw, read back as text (a reader counts it
    unreadable, as the JSON line of it would be); the rows around them are unharmed."""
    bad = [b"\xff\xfe<html>502 Bad Gateway</html>", b'{"device_id": "cm', b"", b"[1, 2]"]
    rows = [("t/ok", OLD), *(("t/bad", decoded(payload)) for payload in bad), ("t/gw", GATEWAY)]
    path = _write(tmp_path / "bad.parquet", rows)
    back = list(read_payloads(path))
    assert back[0] == ("t/ok", OLD)
    assert back[-1] == ("t/gw", GATEWAY)
    texts = [payload for _, payload in back[1:-1]]
    assert all(isinstance(text, str) for text in texts)
    assert texts[1] == '{"device_id": "cm'
    assert texts[2] == ""
