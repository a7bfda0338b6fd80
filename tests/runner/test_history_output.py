"""`--output` with `--speed max`: history files that are identical for identical inputs."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import simulate

pytestmark = pytest.mark.slow  # every test here starts a process or a broker

ARGS = ("--farms", "8", "--start", "2026-03-01", "--duration", "2d", "--speed", "max", "--quiet")


def _write(tmp_path: Path, name: str, *extra: str) -> Path:
    out = tmp_path / name
    result = simulate(*ARGS, "--output", str(out), *extra)
    assert result.returncode == 0, result.stderr
    return out


def test_same_seed_same_start_gives_byte_identical_files(tmp_path: Path) -> None:
    """Two runs with the same seed and start write the same bytes; another seed writes a
    different fleet."""
    first = _write(tmp_path, "a.jsonl")
    second = _write(tmp_path, "b.jsonl")
    other = _write(tmp_path, "c.jsonl", "--seed", "7")
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (first, second, other)]
    assert digest[0] == digest[1]
    assert digest[0] != digest[2]
    ids = [{json.loads(line)["payload"]["device_id"] for line in p.open()} for p in (first, other)]
    farms = [{json.loads(line)["payload"]["farm_id"] for line in p.open()} for p in (first, other)]
    assert farms[0] == farms[1]  # farm ids are positional: farm-00001 ...
    assert ids[0] != ids[1]  # ... but the layouts behind them differ


def test_history_lines_hold_the_envelope_and_a_gap_free_seq(tmp_path: Path) -> None:
    """Every line is {"topic", "payload"} with the full envelope; per device (--clean: no
    duplicates, no clock drift), seq counts up from 0 in time order and every kind arrives
    at its interval."""
    out = _write(tmp_path, "h.jsonl", "--clean")
    lines = [json.loads(line) for line in out.open()]
    envelope = {"device_id", "device_type", "farm_id", "room_id", "fw", "seq", "ts", "kind"}
    by_device: dict[str, list[dict[str, object]]] = {}
    for line in lines:
        assert set(line) == {"topic", "payload"}
        payload = line["payload"]
        assert envelope <= set(payload)
        assert line["topic"].startswith(f"barnstorm/{payload['farm_id']}/")
        by_device.setdefault(payload["device_id"], []).append(payload)
    for device, messages in by_device.items():
        assert [m["seq"] for m in messages] == list(range(len(messages))), device
        stamps = [str(m["ts"]) for m in messages]
        assert stamps == sorted(stamps), device
    kinds = Counter(line["payload"]["kind"] for line in lines)
    per_device = Counter(line["payload"]["device_type"] for line in lines)
    assert set(kinds) == {"summary", "daily", "reading", "heartbeat"}
    # two days: 96 summaries and 2 dailies per cough monitor, 288 readings per climate node
    monitors = {d for d, m in by_device.items() if m[0]["device_type"] == "cough_monitor"}
    assert abs(kinds["summary"] / len(monitors) - 192) <= 2
    assert abs(kinds["daily"] / len(monitors) - 2) <= 1
    assert per_device["gateway"] > per_device["climate_node"] / 5


def test_history_over_two_processes_is_complete_and_deterministic(tmp_path: Path) -> None:
    """--processes 2 splits the fleet by farm: every device of the fleet is in the file with
    a gap-free seq, the report adds up both halves, and two runs write the same bytes."""
    args = (
        "--farms",
        "6",
        "--start",
        "2026-03-01",
        "--duration",
        "1d",
        "--speed",
        "max",
        "--clean",
        "--processes",
        "2",
        "--quiet",
    )
    outputs = []
    for name in ("p1", "p2"):
        out, report = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.json"
        result = simulate(*args, "--output", str(out), "--report", str(report))
        assert result.returncode == 0, result.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    single = _write(tmp_path, "single.jsonl", "--farms", "6", "--duration", "1d", "--clean")
    devices_single = {json.loads(line)["payload"]["device_id"] for line in single.open()}
    by_device: dict[str, list[int]] = {}
    for line in outputs[0].splitlines():
        payload = json.loads(line)["payload"]
        by_device.setdefault(payload["device_id"], []).append(payload["seq"])
    assert set(by_device) == devices_single
    for device, seqs in by_device.items():
        assert seqs == list(range(len(seqs))), device
    totals = json.loads((tmp_path / "p1.json").read_text())["totals"]
    assert totals["sent"] == totals["acknowledged"] == len(outputs[0].splitlines())


def test_writing_history_warns_of_no_loop_lag_it_cannot_distort(tmp_path: Path) -> None:
    """At speed max a tick of thousands of messages holds the event loop for many
    milliseconds; writing to a file, that lag is in no latency (there is none), so the
    report and the summary say so rather than warn the user after --processes."""
    report = tmp_path / "report.json"
    result = simulate(*ARGS[:-1], "--output", str(tmp_path / "h.jsonl"), "--report", str(report))
    assert result.returncode == 0, result.stderr
    time = json.loads(report.read_text())["time"]
    assert time["loop_lag_ms"]["p99"] > 5.0  # large enough that a timed target would warn
    assert time["loop_lag_warning"] is None
    assert "(no latency measured: a local write)" in result.stdout
    assert "warning" not in result.stdout


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_gzipped_history_holds_the_same_lines_and_stats(tmp_path: Path, processes: str) -> None:
    """--output NAME.jsonl.gz streams the same JSON lines through gzip: decompressed, the
    very bytes of NAME.jsonl for the same seed and start (over two processes too, whose
    parts are gzip members of one file), byte-identical from run to run, several times
    smaller, and `simulate stats` gives the same figures on both."""
    import gzip

    plain = _write(tmp_path, "h.jsonl", "--processes", processes)
    packed = _write(tmp_path, "h.jsonl.gz", "--processes", processes)
    again = _write(tmp_path, "again.jsonl.gz", "--processes", processes)
    assert gzip.decompress(packed.read_bytes()) == plain.read_bytes()
    assert packed.read_bytes() == again.read_bytes()
    assert packed.stat().st_size * 4 < plain.stat().st_size
    figures = []
    for path in (plain, packed):
        done = simulate("stats", str(path), "--fields", "rehs,temp_c_1", "--json")
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        figures.append(json.dumps(data, sort_keys=True).replace(path.name, "FILE"))
    assert figures[0] == figures[1]


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_parquet_history_holds_the_same_messages_and_stats(
    tmp_path: Path, processes: str
) -> None:
    """--output NAME.parquet: row for row the topics and payloads of NAME.jsonl for the
    same seed and start (fields and their order; over two processes, the shards' row
    groups joined in the same order), much smaller, and `simulate stats` gives the same
    figures on both."""
    from simulator.transports.parquet import read_payloads

    plain = _write(tmp_path, "h.jsonl", "--processes", processes)
    table = _write(tmp_path, "h.parquet", "--processes", processes)
    lines = [json.loads(line) for line in plain.open()]
    rows = list(read_payloads(table))
    assert len(rows) == len(lines) > 1000
    for (topic, payload), line in zip(rows, lines, strict=True):
        assert topic == line["topic"]
        assert payload == line["payload"]
        assert list(payload) == list(line["payload"])
    assert table.stat().st_size * 5 < plain.stat().st_size
    figures = []
    for path in (plain, table):
        done = simulate("stats", str(path), "--json")
        assert done.returncode == 0, done.stderr
        figures.append(done.stdout.replace(path.name, "FILE"))
    assert figures[0] == figures[1]


def test_malformed_payloads_read_alike_from_parquet_and_json_lines(tmp_path: Path) -> None:
    """Under the bad_payloads scenario (payloads not JSON, cut short, empty, of wrong
    types): `simulate stats` gives the same figures on the Parquet history as on the JSON
    lines, the unreadable messages counted alike."""
    scenario = ("--scenario", "scenarios/bad_payloads.toml")
    figures = []
    for name in ("bad.jsonl", "bad.parquet"):
        path = _write(tmp_path, name, *scenario)
        done = simulate("stats", str(path), "--json")
        assert done.returncode == 0, done.stderr
        figures.append(done.stdout.replace(name, "FILE"))
    assert figures[0] == figures[1]
    assert '"unreadable": 0' not in figures[0]
