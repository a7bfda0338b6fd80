"""The report's JSON Schema (docs/reference/report.schema.json) is a real contract: the
reports of runs validate against it (every test's, by an autouse fixture in conftest.py;
here a history run's and an HTTP run's with SLAs and a read-back), and it refuses a
report that breaks it, so that the validation cannot pass by accepting anything."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import REPORT_SCHEMA, Backends, run_reports
from tests.helpers import ROOT


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(REPORT_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _history_report(tmp_path: Path) -> dict[str, Any]:
    report = tmp_path / "run.json"
    subprocess.run(
        [
            *(sys.executable, "-m", "simulator", "--farms", "2", "--duration", "2h"),
            *("--speed", "max", "--output", str(tmp_path / "h.jsonl"), "--quiet"),
            *("--processes", "1", "--report", str(report)),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    data: dict[str, Any] = json.loads(report.read_text())
    return data


def test_a_history_runs_report_is_valid_and_found(tmp_path: Path) -> None:
    """A history run's report validates, and the conftest's finder sees it (the autouse
    check would otherwise look at nothing)."""
    data = _history_report(tmp_path)
    assert not list(_validator().iter_errors(data))
    assert [path.name for path, _ in run_reports(tmp_path)] == ["run.json"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("totals", "sent"), -1),
        (("exit_code",), 7),
        (("target", "kind"), "carrier-pigeon"),
        (("undeclared",), 1),
        (("accounting", "lost_ranges"), [{"device_id": "d", "first_seq": "one"}]),
    ],
)
def test_the_schema_refuses_a_report_that_breaks_it(
    tmp_path: Path, path: tuple[str, ...], value: Any
) -> None:
    """A negative count, an exit code barnstorm never gives, an unknown target kind, a
    key the schema does not declare, a malformed lost range: each is an error."""
    data = copy.deepcopy(_history_report(tmp_path))
    (tmp_path / "run.json").unlink()  # the broken copy is not left for the autouse check
    if data.get("accounting") is None:
        data["accounting"] = {
            "expected": 1, "received": 1, "lost": 0, "duplicated": 0, "unexpected": 0,
            "malformed": 0, "late": 0, "lost_ranges": [],
        }  # fmt: skip
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert list(_validator().iter_errors(data))


@pytest.mark.slow
def test_an_http_runs_report_with_slas_and_readback_is_valid(
    tmp_path: Path, backend: Backends
) -> None:
    """A run over HTTP against the reference backend with --readback and two SLAs: the
    report, with its verdicts, accounting and the backend's Server-Timing, validates."""
    report, url = tmp_path / "run.json", backend("--farms", "2")
    done = subprocess.run(
        [
            *(sys.executable, "-m", "simulator", "--farms", "2", "--duration", "10m"),
            *("--speed", "120", "--http", f"{url}/ingest"),
            *("--readback", f"{url}/api/readback", "--quiet"),
            *("--sla", "ingest.p95<5s", "--sla", "loss==0", "--report", str(report)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(report.read_text())
    assert data["sla"]
    assert data["accounting"] is not None
    assert not list(_validator().iter_errors(data))
