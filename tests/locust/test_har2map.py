"""`simulate har2map`: a recorded browser session (HAR) becomes a dashboard map that replays it.

The recording, ``tests/data/dashboard_session.har``, is headless Chromium clicking through the
reference backend's dashboard pages (``scripts/record_har.py``): log in, the farm list, a
farm, a room's 7-day chart, a device, the alerts page and acknowledging one, the farm list
again and a second farm.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from simulator.errors import ConfigError
from simulator.locust.dashboard_map import load_map
from simulator.locust.har_secrets import secret_name
from tests.conftest import Backends
from tests.helpers import ROOT, locust_stats, simulate

RECORDING = ROOT / "tests" / "data" / "dashboard_session.har"

#: what the person did, view by view, with IDs as placeholders.
RECORDED_VIEWS = {
    "farms": ["GET /api/farms"],
    "farm": ["GET /api/farms/{farm}", "GET /api/alerts"],
    "farm_room": ["GET /api/farms/{farm}", "GET /api/farms/{farm}/rooms/{room}?from&to"],
    "device": ["GET /api/devices/{device}"],
    "alerts": ["GET /api/alerts", "POST /api/alerts/{alert}/ack"],
}
SESSION = ["farms", "farm", "farm_room", "device", "alerts", "farms", "farm"]


def shape(method: str, path: str, query: str) -> str:
    """``GET /api/farms/{farm}/rooms/{room}?from&to``: a request without its IDs."""
    path = re.sub(
        r"/(farms|rooms|devices|alerts)/[^/]+",
        lambda m: f"/{m.group(1)}/{{{m.group(1)[:-1]}}}",
        path,
    )
    keys = "&".join(part.split("=")[0] for part in query.split("&") if part)
    return f"{method} {path}" + (f"?{keys}" if keys else "")


def recorded_api_calls() -> list[tuple[str, str]]:
    """(shape, raw URL) of every API request in the recording, in order."""
    har = json.loads(RECORDING.read_text())
    calls = []
    for entry in sorted(har["log"]["entries"], key=lambda e: e["startedDateTime"]):
        url = entry["request"]["url"]
        match = re.match(r"https?://[^/]+(/api/[^?]*)\??(.*)", url)
        if match:
            calls.append((shape(entry["request"]["method"], *match.groups()), url))
    return calls


@pytest.fixture(autouse=True)
def login_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """The recorded password, as the team's CI would set it for the map's placeholder."""
    monkeypatch.setenv("BARNSTORM_LOGIN_PASSWORD", "barnstorm")


def har2map(tmp_path: Path) -> Path:
    out = tmp_path / "recorded_map.toml"
    result = simulate("har2map", str(RECORDING), "-o", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_the_recording_is_the_session_it_claims_to_be() -> None:
    """The HAR holds a login and then exactly the views of the session, in order, with
    static assets (HTML, scripts, styles, icons) beside them: what the import must sort."""
    calls = [c for c, _ in recorded_api_calls()]
    assert calls[0] == "POST /api/login"
    assert calls[1:] == [call for view in SESSION for call in RECORDED_VIEWS[view]]
    har = json.loads(RECORDING.read_text())
    urls = [e["request"]["url"] for e in har["log"]["entries"]]
    assert any(u.endswith(".js") for u in urls)
    assert any(u.endswith(".css") for u in urls)


@pytest.mark.slow
def test_har2map_writes_the_navigation_the_recording_did(tmp_path: Path) -> None:
    """Each view's `next` holds the views that followed it in the recording, by count:
    the session went farms, farm, farm_room, device, alerts, farms, farm."""
    dashboard_map = load_map(har2map(tmp_path))
    following = {view.name: dict(view.next) for view in dashboard_map.views}
    expected: dict[str, dict[str, float]] = defaultdict(dict)
    for before, after in itertools.pairwise(SESSION):
        expected[before][after] = expected[before].get(after, 0) + 1
    assert following == {name: expected.get(name, {}) for name in RECORDED_VIEWS}


def test_har2map_groups_views_finds_ids_and_login(tmp_path: Path) -> None:
    """The map has the login step (token from the login answer, the header it went in), one
    view per kind of page with its weight, the API requests only, IDs as fleet placeholders
    or extracted from an earlier answer, and the chart's 7-day window as {from}/{to}."""
    dashboard_map = load_map(har2map(tmp_path))
    assert dashboard_map.login is not None
    assert (dashboard_map.login.url, dashboard_map.login.token) == ("/api/login", "token")
    assert (dashboard_map.login.header, dashboard_map.login.scheme) == ("Authorization", "Bearer")
    views = {view.name: view for view in dashboard_map.views}
    assert set(views) == set(RECORDED_VIEWS)
    assert {name: view.weight for name, view in views.items()} == {
        name: SESSION.count(name) for name in RECORDED_VIEWS
    }
    urls = {name: [r.url for r in view.requests] for name, view in views.items()}
    assert urls["farm"] == ["/api/farms/{farm_id}", "/api/alerts"]
    assert urls["farm_room"][1] == "/api/farms/{farm_id}/rooms/{room_id}?from={from}&to={to}"
    assert views["farm_room"].window_days == 7.0
    assert urls["device"] == ["/api/devices/{device_id}"]
    assert urls["alerts"] == ["/api/alerts", "/api/alerts/{alert_id}/ack"]
    assert views["alerts"].requests[0].extract == {"alert_id": "*.id"}
    assert all(1.0 <= view.think[0] <= view.think[1] <= 3.0 for view in views.values())
    text = (tmp_path / "recorded_map.toml").read_text()
    assert "static" not in text
    assert "Bearer " not in text  # the recorded token stays out


def test_statuses_the_recording_took_in_stride_are_expected_on_replay(tmp_path: Path) -> None:
    """A request answered 404 in one visit of a view and 200 in another (the second farm
    had no data yet) expects both on replay, and a request the recording only saw answered
    404 expects 200 too: the map accepts every status its own recording accepted."""
    from simulator.locust.har import build_map, render

    har = json.loads(RECORDING.read_text())
    for entry in har["log"]["entries"]:
        url = entry["request"]["url"]
        if "/api/devices/" in url or url.endswith("/api/farms/farm-00002"):
            entry["response"]["status"] = 404
    recording = tmp_path / "with_404s.har"
    recording.write_text(json.dumps(har))
    written = tmp_path / "map.toml"
    written.write_text(render(build_map(recording), str(recording)))
    views = {view.name: view for view in load_map(written).views}
    assert views["farm"].requests[0].expect == (200, 404)  # farm-00001 200, farm-00002 404
    assert views["farm"].requests[1].expect == (200,)
    assert views["device"].requests[0].expect == (200, 404)
    assert views["farms"].requests[0].expect == (200,)


@pytest.mark.slow
def test_the_map_replays_the_recorded_sequence_with_new_ids(
    tmp_path: Path, backend: Backends
) -> None:
    """Run for half a minute by real Locust users against a backend seeded with another fleet,
    the map reproduces every recorded view's request sequence (as the backend's access log
    sees it, one trace per view) with the fleet's own IDs, not the recorded ones."""
    access_log = tmp_path / "access.jsonl"
    url = backend("--farms", "3", "--access-log", str(access_log))
    start = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    seeded = simulate(
        *("--farms", "3", "--http", f"{url}/ingest", "--http-batch", "100", "--quiet"),
        *("--speed", "max", "--start", start, "--duration", "1d"),
        *("--scenario", "scenarios/heatwave.toml"),
    )
    assert seeded.returncode == 0, seeded.stderr
    map_file = har2map(tmp_path)
    env = {
        **os.environ,
        "BARNSTORM_FARMS": "3",
        "BARNSTORM_DASHBOARD_MAP": str(map_file),
        "BARNSTORM_LOGIN_PASSWORD": "barnstorm",  # the map names it; the CI variable here
    }
    # --stop-timeout: a user stopped in the middle of a view finishes it (the view is one
    # task), so every trace in the log is a whole view.
    users = ["-u", "4", "-r", "4", "-t", "30s", "--stop-timeout", "10", "--host", url]
    locustfile = ["locust", "-f", "locustfiles/dashboard.py", "--headless"]
    stats = locust_stats(*locustfile, *users, env=env, timeout=150)
    assert sum(entry["num_failures"] for entry in stats) == 0, stats

    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in access_log.read_text().splitlines():
        request = json.loads(line)
        if request["path"].startswith("/api/") and "traceparent" in request:
            # each request its own trace; one opening of a view names itself in the baggage
            opening = re.search(r"barnstorm\.view=(\w+)", request["baggage"])
            key = opening.group(1) if opening else request["traceparent"].split("-")[1]
            traces[key].append(request)
    seen: dict[str, int] = defaultdict(int)
    farms: set[str] = set()
    for requests in traces.values():
        flow = re.search(r"barnstorm\.flow=([\w.-]+)", requests[0]["baggage"])
        assert flow is not None
        sequence = [shape(r["method"], r["path"], r["query"]) for r in requests]
        if flow.group(1) == "login":
            assert sequence == ["POST /api/login"]
            continue
        # a view ends early only when there is nothing to act on (no alert): none here
        assert sequence == RECORDED_VIEWS[flow.group(1)], (flow.group(1), sequence)
        seen[flow.group(1)] += 1
        farms |= set(re.findall(r"farm-\d+", " ".join(r["path"] for r in requests)))
        for request in requests:
            if "from=" in request["query"]:
                window = dict(part.split("=") for part in request["query"].split("&"))
                assert int(window["to"]) - int(window["from"]) == 7 * 86400
    assert set(seen) == set(RECORDED_VIEWS), seen
    # Each user follows the recorded navigation: its views, in order, go as the map's
    # `next` says (farms, then a farm, then a room of it, ...).
    following = {view.name: {n for n, _ in view.next} for view in load_map(map_file).views}
    openings: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for requests in traces.values():
        baggage = dict(item.split("=", 1) for item in requests[0]["baggage"].split(","))
        if baggage["barnstorm.flow"] != "login":
            session = baggage["barnstorm.session"]
            openings[session].append((requests[0]["t"], baggage["barnstorm.flow"]))
    steps = 0
    for views in openings.values():
        names = [name for _, name in sorted(views)]
        for before, after in itertools.pairwise(names):
            assert after in following[before] or not following[before], (before, after)
            steps += 1
    assert steps >= 10
    recorded_farms = set(re.findall(r"farm-\d+", " ".join(u for _, u in recorded_api_calls())))
    assert farms - recorded_farms, f"replayed only the recorded farms {sorted(farms)}"


@pytest.mark.slow
def test_har2map_refuses_what_is_not_a_recording(tmp_path: Path) -> None:
    """Files that are not HAR get one line naming the file and what was expected, exit 2."""
    cases = {
        "broken.har": "{not json",
        "other.har": '{"log": {"pages": []}}',
        "entry.har": '{"log": {"entries": [{"request": {}}]}}',
        "static.har": json.dumps(
            {
                "log": {
                    "entries": [
                        {
                            "startedDateTime": "2026-01-01T00:00:00Z",
                            "request": {"method": "GET", "url": "http://x/app.js"},
                            "response": {"status": 200, "content": {"mimeType": "text/js"}},
                        }
                    ]
                }
            }
        ),
    }
    expected = {
        "broken.har": "invalid JSON",
        "other.har": "expected {",
        "entry.har": r"log.entries\[0\]: expected request.method",
        "static.har": "no API requests found",
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        result = simulate("har2map", str(path))
        assert result.returncode == 2, (name, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (name, result.stderr)
        assert name in lines[0], (name, result.stderr)
        assert re.search(expected[name], lines[0]), (name, lines[0])


@pytest.mark.slow
def test_a_login_answer_missing_from_the_recording_is_guessed_and_said(tmp_path: Path) -> None:
    """Browsers drop a body when the page navigates away at once (as after a login): the
    sign-in POST before the first authorised request still becomes the login step, and
    har2map says which token key it assumed."""
    har = json.loads(RECORDING.read_text())
    for entry in har["log"]["entries"]:
        if entry["request"]["url"].endswith("/api/login"):
            entry["response"]["content"].pop("text", None)
    stripped = tmp_path / "no_login_answer.har"
    stripped.write_text(json.dumps(har))
    out = tmp_path / "map.toml"
    result = simulate("har2map", str(stripped), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert 'assumed the token is its "token" key' in result.stderr
    dashboard_map = load_map(out)
    assert dashboard_map.login is not None
    assert dashboard_map.login.url == "/api/login"
    assert "login" not in {view.name for view in dashboard_map.views}


def test_the_map_keeps_no_secret_of_the_recording(tmp_path: Path) -> None:
    """The recording's password, an API key in a query string and a token in a request body
    become named {env:...} placeholders, each said once on stderr (never its value); the
    map loads once they are set and is refused, naming the variable, while one is not."""
    har = json.loads(RECORDING.read_text())
    secrets = {"password": "Hunter2-recorded!", "api": "key-5f3a9c2e71", "body": "tok-77d0e1"}
    for entry in har["log"]["entries"]:
        request = entry["request"]
        if request["method"] == "POST" and request["url"].endswith("/api/login"):
            body = {"username": "farmer", "password": secrets["password"]}
            request["postData"]["text"] = json.dumps(body)
        elif request["url"].split("?")[0].endswith("/api/alerts") and request["method"] == "GET":
            request["url"] += ("&" if "?" in request["url"] else "?") + f"api_key={secrets['api']}"
        elif request["method"] == "POST" and "/ack" in request["url"]:
            text = json.dumps({"note": "seen {x}", "ackToken": secrets["body"]})
            request["postData"] = {"mimeType": "application/json", "text": text}
    recording = tmp_path / "with_secrets.har"
    recording.write_text(json.dumps(har))
    out = tmp_path / "map.toml"
    result = simulate("har2map", str(recording), "-o", str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    for secret in secrets.values():
        assert secret not in text
        assert secret not in result.stderr
    for name in ("BARNSTORM_LOGIN_PASSWORD", "BARNSTORM_API_KEY", "BARNSTORM_ACK_TOKEN"):
        assert f"{{env:{name}}}" in text, text
        assert result.stderr.count(f"set {name} before a run") >= 1
    assert "seen {{x}}" in text  # the rest of a body stays as recorded, braces kept
    values = {
        "BARNSTORM_LOGIN_PASSWORD": "pw",
        "BARNSTORM_API_KEY": "k",
        "BARNSTORM_ACK_TOKEN": "t",
    }
    for name in values:
        os.environ.pop(name, None)
    with pytest.raises(ConfigError, match="BARNSTORM_LOGIN_PASSWORD"):
        load_map(out)
    os.environ.update(values)
    try:
        loaded = load_map(out)
    finally:
        for name in values:
            os.environ.pop(name, None)
    assert loaded.login is not None
    assert loaded.login.body is not None
    assert json.loads(loaded.login.body)["password"] == "pw"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True),
        ("apiKey", True),
        ("X-API-Key", True),
        ("access_token", True),
        ("client_secret", True),
        ("sessionId", True),
        ("username", False),
        ("shipping", False),
        ("author", False),
        ("spinner", False),
        ("token_type", False),
        ("pageSize", False),
    ],
)
def test_a_secret_is_known_by_the_words_of_its_name(name: str, secret: bool) -> None:
    """Passwords, tokens and keys by the words of their names (camelCase, dashes or
    underscores), not by letters inside other words (shipping, author, spinner)."""
    assert secret_name(name) is secret


def _call(at: str, path: str, answer: Any, kind: str = "fetch") -> dict[str, Any]:
    """A HAR entry of a recorded call and its JSON answer (or a page load, ``document``)."""
    mime = "text/html" if kind == "document" else "application/json"
    return {
        "startedDateTime": at,
        "time": 20,
        "_resourceType": kind,
        "request": {"method": "GET", "url": f"http://app.example{path}", "headers": []},
        "response": {
            "status": 200,
            "content": {"mimeType": mime, "text": json.dumps(answer) if answer else ""},
        },
    }


def test_an_id_a_later_view_uses_is_extracted_where_it_first_appeared(tmp_path: Path) -> None:
    """The pens list (one page) shows a pen's UUID that the next page opens: har2map
    extracts it in the list's view and the later view takes it from the user's session;
    the map loads as written."""
    pen = "3f9c1e0a-5b7d-4c2e-9a81-0d6f2b4c8e17"
    entries = [
        _call("2026-01-01T10:00:00.000Z", "/pens", None, "document"),
        _call("2026-01-01T10:00:00.100Z", "/v2/pens/", {"items": [{"uuid": pen}]}),
        _call("2026-01-01T10:00:05.000Z", "/pens/chart", None, "document"),
        _call("2026-01-01T10:00:05.100Z", f"/v2/pens/{pen}/chart", {"points": []}),
    ]
    recording = tmp_path / "pens.har"
    recording.write_text(json.dumps({"log": {"entries": entries}}))
    out = tmp_path / "pens.toml"
    result = simulate("har2map", str(recording), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "looks like an ID" not in result.stderr
    loaded = load_map(out)
    listing = next(r for v in loaded.views for r in v.requests if r.url == "/v2/pens/")
    chart = next(r for v in loaded.views for r in v.requests if "chart" in r.url)
    assert listing.extract == {"pen_id": "items.*.uuid"}
    assert chart.url == "/v2/pens/{pen_id}/chart"
