"""Dashboard users: a real headless Locust against the reference backend."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import httpx
import pytest

from simulator.errors import ConfigError
from simulator.locust.dashboard_map import dig, load_map
from tests.conftest import READBACK_HEADERS, Backends
from tests.helpers import ROOT, locust_stats, simulate
from tests.resetproxy import ResetProxy


def _fast_map(folder: Path, think: str) -> Path:
    """The default dashboard map with short think times, so a short run opens every view."""
    fast = folder / "map.toml"
    text = (ROOT / "locustfiles" / "dashboard_map.toml").read_text()
    fast.write_text(re.sub(r"think = \[[^\]]*\]", f"think = [{think}]", text))
    return fast


@pytest.mark.slow
def test_locust_users_browse_every_view_of_the_fleet(tmp_path: Path, backend: Backends) -> None:
    """Locust users log in and open the farm list, farm overviews, 7-day room charts and
    device pages of the same fleet the devices published for, without a failure; each
    request carries a W3C traceparent."""
    url = backend("--farms", "3")
    seeded = simulate(
        "--farms", "3", "--http", f"{url}/ingest", "--speed", "max", "--duration", "2h", "--quiet"
    )
    assert seeded.returncode == 0, seeded.stderr
    fast_map = _fast_map(tmp_path, "0.05, 0.2")
    env = {**os.environ, "BARNSTORM_FARMS": "3", "BARNSTORM_DASHBOARD_MAP": str(fast_map)}
    browse = ["-u", "8", "-r", "8", "-t", "10s", "--host", url]
    stats = locust_stats(
        "locust", "-f", "locustfiles/dashboard.py", "--headless", *browse, env=env, timeout=120
    )
    entries = {entry["name"]: entry for entry in stats}
    for name in (
        "POST /api/login",
        "GET /api/farms",
        "GET /api/farms/[farm_id]",
        "GET /api/farms/[id]/rooms/[id] (7 days)",
        "GET /api/devices/[device_id]",
        "GET /api/alerts",
    ):
        assert name in entries, sorted(entries)
        assert entries[name]["num_requests"] > 0
        assert entries[name]["num_failures"] == 0, (name, entries[name])


def test_dashboard_map_errors_name_the_place(tmp_path: Path) -> None:
    """A map with an unknown placeholder or a bad status is refused, naming file and key."""
    bad = tmp_path / "map.toml"
    bad.write_text('[views.x]\n[[views.x.requests]]\nurl = "/farms/{farm}"\n')
    with pytest.raises(
        ConfigError, match=r"map.toml: views.x.requests\[0\].url: unknown placeholder"
    ):
        load_map(bad)
    bad.write_text('[views.x]\n[[views.x.requests]]\nurl = "/farms"\nexpect = 99\n')
    with pytest.raises(ConfigError, match=r"views.x.requests\[0\].expect"):
        load_map(bad)
    assert dig([{"id": 7}], "0.id") == 7
    assert dig([], "0.id") is None


def test_ids_from_the_products_answers_and_csvs_are_checked_before_a_run(tmp_path: Path) -> None:
    """A map may name IDs the product knows: a value a view extracts (``items.*.id``: all
    of them, one drawn) serves the user's later views, and a CSV source gives each user
    one of the team's values; a CSV without its column, with an empty value or a value
    twice, or unreadable is refused with one line naming the file; a cookie login's CSRF
    settings are checked too."""
    (tmp_path / "sites.csv").write_text("uuid,title\nsite-a,A\nsite-b,B\n")
    good = tmp_path / "map.toml"
    good.write_text(
        '[sources.site]\ncsv = "sites.csv"\ncolumn = "uuid"\n'
        '[views.list]\n[[views.list.requests]]\nurl = "/v2/sites/"\n'
        'extract = { pen = "items.*.pens.0" }\n'
        '[views.pen]\n[[views.pen.requests]]\nurl = "/v2/sites/{site}/pens/{pen}/"\n'
    )
    loaded = load_map(good)
    assert loaded.sources == {"site": ("site-a", "site-b")}
    answer = {"items": [{"pens": ["p1"]}, {"pens": []}, {"pens": ["p3"]}]}
    assert dig(answer, "items.*.pens.0") == ["p1", "p3"]
    assert dig({"items": []}, "items.*.id") == []
    assert dig({"items": 3}, "items.*.id") == []
    for text, why in (
        ("id\nsite-a\n", 'expected a column "uuid"'),
        ("uuid\nsite-a\n\n\nsite-a\n", "twice"),
        ("uuid,x\n,1\n", "sites.csv:2: no value"),
        ("", 'expected a column "uuid"'),
    ):
        (tmp_path / "sites.csv").write_text(text)
        with pytest.raises(ConfigError, match=re.escape(why)) as error:
            load_map(good)
        assert "sites.csv" in str(error.value)
    login = tmp_path / "login.toml"
    views = '[views.x]\n[[views.x.requests]]\nurl = "/v2/sites/"\n'
    login.write_text('[login]\nurl = "/login/"\ntoken = ""\ncsrf_url = "/csrf/"\n' + views)
    with pytest.raises(ConfigError, match=r"login\.csrf_url: needs csrf_cookie"):
        load_map(login)
    login.write_text('[login]\nurl = "/login/"\ntoken = 3\n' + views)
    with pytest.raises(ConfigError, match=r"login\.token: expected the token's path"):
        load_map(login)
    login.write_text('[login]\nurl = "/login/"\ntoken = ""\ncsrf_cookie = "csrftoken"\n' + views)
    parsed = load_map(login).login
    assert parsed is not None
    assert (parsed.token, parsed.csrf_cookie, parsed.csrf_header) == (
        "",
        "csrftoken",
        "X-CSRFToken",
    )
    (tmp_path / "sites.csv").unlink()
    with pytest.raises(ConfigError, match=r"sources\.site\.csv: cannot read"):
        load_map(good)


@pytest.mark.slow
def test_mixed_run_reports_devices_beside_dashboards(
    tmp_path: Path,
    backend: Backends,
    mosquitto: str,
    topic_root: str,
) -> None:
    """`simulate mixed` runs a real headless Locust with dashboard users and, through the
    bridge, the device fleet over Mosquitto: Locust's JSON has both kinds of entries, and
    the devices' successful publishes equal what the backend received."""
    url = backend("--farms", "3", "--mqtt", mosquitto, "--topic", f"{topic_root}/#")
    fast_map = _fast_map(tmp_path, "0.2, 0.5")
    env = {
        **os.environ,
        "BARNSTORM_FARMS": "3",
        "BARNSTORM_MQTT": mosquitto,
        "BARNSTORM_SPEED": "120",
        "BARNSTORM_CONNECT_RATE": "0",
        "BARNSTORM_TOPIC_TEMPLATE": f"{topic_root}/{{device_id}}/{{kind}}",
        "BARNSTORM_DASHBOARD_MAP": str(fast_map),
    }
    load = ["--farms", "3", "--users", "3", "--spawn-rate", "3", "--run-time", "12s", "--host", url]
    entries = locust_stats("simulator", "mixed", *load, env=env, timeout=180)
    devices = [e for e in entries if e["method"] == "MQTT"]
    names = {e["name"] for e in devices}
    assert names == {"publish cough_monitor", "publish climate_node", "publish gateway"}
    assert any(e["name"] == "GET /api/farms/[farm_id]" for e in entries)
    delivered = sum(e["num_requests"] - e["num_failures"] for e in devices)
    unsettled = sum(e["num_failures"] for e in devices)  # in flight when the test stopped
    assert delivered > 20
    deadline = time.monotonic() + 10  # the backend may still be ingesting the last ones
    while (
        received := httpx.get(f"{url}/api/readback", headers=READBACK_HEADERS).json()["received"]
    ) < delivered:
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert delivered <= received <= delivered + unsettled


@pytest.mark.slow
def test_a_reset_among_hundreds_of_requests_fails_no_mixed_run(
    tmp_path: Path,
    backend: Backends,
    mosquitto: str,
    topic_root: str,
) -> None:
    """A server that resets a connection the user is sending on (the 100th GET) costs the
    run nothing: the user sends it again on a new connection, as a browser does, and the
    report counts the retry under the request's name. Two resets in a row (the 200th GET
    and its retry) fail that one request, with its real error in the report (the
    exception, not "status 0"), and one failure among hundreds of requests is within the
    default --max-failed of 1 %: the mixed run exits 0."""
    url = backend("--farms", "3", "--mqtt", mosquitto, "--topic", f"{topic_root}/#")
    port = int(url.rsplit(":", 1)[1])
    fast_map = _fast_map(tmp_path, "0.005, 0.02")
    env = {
        **os.environ,
        "BARNSTORM_MQTT": mosquitto,
        "BARNSTORM_SPEED": "60",
        "BARNSTORM_CONNECT_RATE": "0",
        "BARNSTORM_TOPIC_TEMPLATE": f"{topic_root}/{{device_id}}/{{kind}}",
        "BARNSTORM_DASHBOARD_MAP": str(fast_map),
    }
    report = tmp_path / "mixed.json"
    with ResetProxy(("127.0.0.1", port), reset=(100, 200, 201)) as proxy:
        load = ["--farms", "3", "--users", "1", "--spawn-rate", "1", "--run-time", "15s"]
        entries = locust_stats(
            "simulator", "mixed", *load, "--host", proxy.url, "--report", str(report),
            env=env, timeout=180,
        )  # fmt: skip
    assert proxy.resets == [100, 200, 201], (proxy.requests, proxy.resets)
    dashboard = [e for e in entries if e["method"] != "MQTT"]
    assert sum(e["num_requests"] for e in dashboard) >= 200
    assert sum(e["num_failures"] for e in dashboard) == 1
    requests = [r for r in json.loads(report.read_text())["requests"] if r["kind"] == "dashboard"]
    assert sum(r["retried_closed_connection"] for r in requests) == 2
    (failed,) = [r for r in requests if r["failures"]]
    (error,) = failed["errors"]
    assert "ConnectionResetError" in error, error
    assert "reset by peer" in error, error
    assert failed["errors"][error] == 1


def test_a_map_takes_its_secrets_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``{env:NAME}`` in a map's login body takes the variable's value, escaped for JSON,
    so the map can live in a repository without the password; an unset variable refuses
    the map with one line naming the file, key and variable, and `simulate mixed` refuses
    it before Locust starts (exit 2)."""
    path = tmp_path / "map.toml"
    path.write_text(
        '[login]\nurl = "/api/login"\n'
        'body = \'{"username": "farmer", "password": "{env:BARNSTORM_TEST_PASSWORD}"}\'\n'
        '[views.x]\n[[views.x.requests]]\nurl = "/api/farms"\n'
    )
    monkeypatch.delenv("BARNSTORM_TEST_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match=r"map.toml: login.body: .*BARNSTORM_TEST_PASSWORD"):
        load_map(path)
    refused = simulate(
        "mixed", "--host", "http://127.0.0.1:9", env={"BARNSTORM_DASHBOARD_MAP": str(path)}
    )
    assert refused.returncode == 2
    assert "BARNSTORM_TEST_PASSWORD" in refused.stderr
    monkeypatch.setenv("BARNSTORM_TEST_PASSWORD", 'pa"ss{word}')
    login = load_map(path).login
    assert login is not None
    assert json.loads(login.body or "")["password"] == 'pa"ss{word}'
