"""The whole path for a product that is not barnstorm's: its dashboards recorded by a real
headless Chromium, the recording turned into a map by ``simulate har2map``, the map
replayed by ``simulate mixed`` beside devices bound to the product's own sensors by a
device map. The fast tests read a recording of the same session kept in tests/data."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.locust.dashboard_map import load_map
from simulator.locust.har import build_map, render
from tests.foreign.running import dashed, export_devices, foreign_app
from tests.foreign.server import SECRET
from tests.helpers import ROOT, locust_stats

RECORDING = ROOT / "tests" / "data" / "foreign_session.har"


def _secrets_of(har: Path) -> set[str]:
    """Every secret the recording holds: the password, the session and CSRF cookies."""
    found = {SECRET}
    for entry in json.loads(har.read_text())["log"]["entries"]:
        for cookie in entry["response"].get("cookies", []):
            found.add(cookie["value"])
        for header in entry["request"]["headers"]:
            if header["name"].lower() in ("cookie", "x-csrftoken"):
                found |= {part.partition("=")[2] for part in header["value"].split("; ")}
                found.add(header["value"])
    return {value for value in found if len(value) >= 8}


def test_har2map_finds_the_cookie_login_its_csrf_and_the_products_ids() -> None:
    """From the browser's recording: the cookie login (token ""), the CSRF cookie's page
    and header, the site ID the later views use drawn from the listing that showed it
    (``items.*.uuid``, not barnstorm's fleet), and no secret of the recording in the map."""
    draft = build_map(RECORDING)
    assert draft.login is not None
    assert draft.login.url == "/accounts/login/"
    assert draft.found.token == ""
    assert (draft.found.csrf_url, draft.found.csrf_cookie) == ("/app/login/", "csrftoken")
    assert draft.found.csrf_header == "x-csrftoken"
    views = {name: requests for name, _, _, _, requests in draft.views}
    assert views["sites"][0].extract == {"site_id": "items.*.uuid"}
    assert [t.url for t in views["site"]] == [
        "/v2/sites/{site_id}/pens/",
        "/v2/sites/{site_id}/weather/",
        "/v2/sites/{site_id}/ack/",
    ]
    text = render(draft, str(RECORDING))
    leaked = sorted(secret for secret in _secrets_of(RECORDING) if secret in text)
    assert not leaked
    assert "{env:BARNSTORM_LOGIN_SECRET}" in text


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The foreign app taking telemetry only from its provisioned sensors."""
    database = tmp_path / "app.db"
    with foreign_app(database, "--strict-devices") as url:
        yield url, database


@pytest.mark.slow
def test_a_recorded_foreign_dashboard_replays_beside_its_devices(
    tmp_path: Path, app: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Record the app's pages with headless Chromium (tests/foreign/record.py), map the
    recording with ``simulate har2map``, replay it with ``simulate mixed`` while the
    devices post under the app's sensor IDs (``BARNSTORM_DEVICE_MAP``): every replayed
    request of the map hits a site the app holds and succeeds (2xx, the CSRF-checked POST
    included), the devices' messages are all stored under the app's own IDs, and the map
    holds none of the recording's secrets."""
    url, database = app
    har, map_file = tmp_path / "session.har", tmp_path / "map.toml"
    record = [sys.executable, "-m", "tests.foreign.record", "--url", url, "--har", str(har)]
    recorded = subprocess.run(record, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert recorded.returncode == 0, recorded.stderr[-3000:]
    mapped = subprocess.run(
        [sys.executable, "-m", "simulator", "har2map", str(har), "-o", str(map_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert mapped.returncode == 0, mapped.stderr
    assert "BARNSTORM_LOGIN_SECRET" in mapped.stderr  # it says which secret it replaced
    text = map_file.read_text()
    assert not sorted(secret for secret in _secrets_of(har) if secret in text)
    sensors = export_devices(database, tmp_path / "devices.csv")
    env = {
        **os.environ,
        "BARNSTORM_DASHBOARD_MAP": str(map_file),
        "BARNSTORM_DEVICE_MAP": str(tmp_path / "devices.csv"),
        "BARNSTORM_LOGIN_SECRET": SECRET,
    }
    stats = locust_stats(
        *("simulator", "mixed", "--farms", "2", "--users", "3", "--spawn-rate", "3"),
        *("--run-time", "12s", "--speed", "120", "--host", url),
        *("--http", f"{url}/v2/telemetry/"),
        env=env,
        timeout=240,
    )
    entries = {entry["name"]: entry for entry in stats}
    monkeypatch.setenv("BARNSTORM_LOGIN_SECRET", SECRET)
    replayed = {spec.name for view in load_map(map_file).views for spec in view.requests}
    for name in (
        "GET /app/login/",
        "POST /accounts/login/",
        "GET /v2/sites/",
        "GET /v2/sites/[site_id]/pens/",
    ):
        assert entries[name]["num_requests"] > 0, (name, sorted(entries))
    assert {n for n in replayed if entries.get(n, {}).get("num_requests")} >= {
        "GET /v2/sites/",
        "GET /v2/sites/[site_id]/pens/",
        "GET /v2/sites/[site_id]/weather/",
    }
    assert all(entry["num_failures"] == 0 for entry in stats), [
        (e["name"], e["num_failures"]) for e in stats if e["num_failures"]
    ]
    ingest = sum(e["num_requests"] for n, e in entries.items() if n.startswith("ingest "))
    assert ingest > 0
    with sqlite3.connect(database) as db:
        stored = [json.loads(body) for (body,) in db.execute("SELECT body FROM foreign_upload")]
        sites = {dashed(s) for (s,) in db.execute("SELECT id FROM foreign_site")}
    assert stored
    assert {m["device_id"] for m in stored} <= sensors
    assert {m["farm_id"] for m in stored} <= sites
