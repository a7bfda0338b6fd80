"""A map of a product that is not barnstorm's: its IDs from its own answers and from a CSV
its team exported, kept down each user's session, against the Django test backend whose
pages answer 404 to an ID they do not hold."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.foreign.running import dashed, export_devices, foreign_app
from tests.foreign.server import SECRET, USER
from tests.helpers import ROOT, locust_stats

pytestmark = pytest.mark.slow  # the app and Locust are processes

#: sites from the team's CSV for the pens; weather for a site the user saw in the list.
MAP = """
[login]
url = "/auth/session/"
body = '{"user": "barn-manager", "secret": "{env:BARN_SECRET}"}'
token = "session.access"
scheme = "Token"

[sources.site]
csv = "sites.csv"
column = "uuid"

[views.site_list]
think = [0.05, 0.2]
[[views.site_list.requests]]
name = "GET /v2/sites/"
url = "/v2/sites/"
extract = { seen = "items.*.uuid" }

[views.pens]
think = [0.05, 0.2]
[[views.pens.requests]]
name = "GET /v2/sites/[uuid]/pens/"
url = "/v2/sites/{site}/pens/"

[views.weather]
weight = 2
think = [0.05, 0.2]
[[views.weather.requests]]
name = "GET /v2/sites/[uuid]/weather/"
url = "/v2/sites/{seen}/weather/"
"""


@pytest.fixture
def foreign(tmp_path: Path) -> Iterator[str]:
    with foreign_app(tmp_path / "foreign.db") as url:
        yield url


def _refused_before_load(host: str, map_file: Path, secret: str = SECRET) -> str:
    """``simulate mixed`` over ``map_file`` stops before any load: exit 2, one line, no
    Locust started; that line."""
    done = subprocess.run(
        [sys.executable, "-m", "simulator", "mixed", "--host", host, "--run-time", "5s"],
        cwd=ROOT,
        env={**os.environ, "BARNSTORM_DASHBOARD_MAP": str(map_file), "BARN_SECRET": secret},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "Locust" not in done.stderr
    return lines[0]


def _export_sites(url: str, path: Path) -> list[str]:
    """The team's export of its sites, as a CSV (through the app's own API)."""
    login = urllib.request.Request(
        f"{url}/auth/session/",
        data=json.dumps({"user": USER, "secret": SECRET}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(login, timeout=10) as answer:
        token = json.loads(answer.read())["session"]["access"]
    listing = urllib.request.Request(
        f"{url}/v2/sites/", headers={"Authorization": f"Token {token}"}
    )
    with urllib.request.urlopen(listing, timeout=10) as answer:
        sites = [item["uuid"] for item in json.loads(answer.read())["items"]]
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["uuid", "title"])
        writer.writerows([site, f"site {i}"] for i, site in enumerate(sites))
    return sites


def test_a_foreign_products_ids_come_from_its_answers_and_its_csv(
    tmp_path: Path, foreign: str
) -> None:
    """Locust users on the Django app log in with its own login, open pens of the sites in
    the team's CSV and the weather of a site they saw in the listing earlier in their
    session: every request hits an ID the app holds (no 404, no failure at all)."""
    _export_sites(foreign, tmp_path / "sites.csv")
    (tmp_path / "map.toml").write_text(MAP)
    env = {
        **os.environ,
        "BARNSTORM_DASHBOARD_MAP": str(tmp_path / "map.toml"),
        "BARN_SECRET": SECRET,
    }
    users = ["-u", "4", "-r", "4", "-t", "10s", "--host", foreign]
    stats = locust_stats(
        "locust", "-f", "locustfiles/dashboard.py", "--headless", *users, env=env, timeout=120
    )
    entries = {entry["name"]: entry for entry in stats}
    for name in (
        "POST /auth/session/",
        "GET /v2/sites/",
        "GET /v2/sites/[uuid]/pens/",
        "GET /v2/sites/[uuid]/weather/",
    ):
        assert entries[name]["num_requests"] > 0, (name, sorted(entries))
        assert entries[name]["num_failures"] == 0, (name, entries[name])


def test_a_csv_source_without_its_column_stops_a_mixed_run_before_any_load(
    tmp_path: Path, foreign: str
) -> None:
    """A CSV that lacks the map's column: one line naming the file and the column, exit 2,
    before Locust starts."""
    (tmp_path / "sites.csv").write_text("id,title\n1,a\n")
    (tmp_path / "map.toml").write_text(MAP)
    line = _refused_before_load(foreign, tmp_path / "map.toml")
    assert "sites.csv" in line
    assert 'column "uuid"' in line


#: the pages' side of the app: a cookie login behind Django's CSRF protection.
COOKIE_MAP = """
[login]
csrf_url = "/accounts/csrf/"
csrf_cookie = "csrftoken"
csrf_header = "X-CSRFToken"
url = "/accounts/login/"
body = '{"user": "barn-manager", "secret": "{env:BARN_SECRET}"}'
token = ""

[views.site_list]
think = [0.05, 0.2]
[[views.site_list.requests]]
name = "GET /v2/sites/"
url = "/v2/sites/"
extract = { seen = "items.*.uuid" }
[[views.site_list.requests]]
name = "POST /v2/sites/[uuid]/ack/"
method = "POST"
url = "/v2/sites/{seen}/ack/"
body = '{{"note": "seen"}}'
"""


@pytest.mark.parametrize("csrf", [True, False])
def test_a_cookie_login_with_csrf_works_as_a_browser_does(
    tmp_path: Path, foreign: str, csrf: bool
) -> None:
    """A login that sets a session cookie, behind Django's CSRF protection: users GET the
    page that sets the CSRF cookie, send it back in X-CSRFToken on the login and on every
    POST, and the session cookie carries them; not a request fails. Without the map's
    CSRF settings, Django refuses the login (403), as it would refuse a forged form."""
    text = COOKIE_MAP if csrf else COOKIE_MAP.replace('csrf_url = "/accounts/csrf/"\n', "")
    if not csrf:
        text = text.replace('csrf_cookie = "csrftoken"\n', "")
    (tmp_path / "map.toml").write_text(text)
    env = {
        **os.environ,
        "BARNSTORM_DASHBOARD_MAP": str(tmp_path / "map.toml"),
        "BARN_SECRET": SECRET,
    }
    users = ["-u", "3", "-r", "3", "-t", "6s", "--host", foreign]
    command = [sys.executable, "-m", "locust", "-f", "locustfiles/dashboard.py", "--headless"]
    done = subprocess.run(
        [*command, *users, "--json", "--only-summary"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    entries = {entry["name"]: entry for entry in json.loads(done.stdout)}
    if csrf:
        assert done.returncode == 0, done.stderr[-3000:]
        for name in ("GET /accounts/csrf/", "POST /accounts/login/", "POST /v2/sites/[uuid]/ack/"):
            assert entries[name]["num_requests"] > 0, (name, sorted(entries))
            assert entries[name]["num_failures"] == 0, (name, entries[name])
    else:
        login = entries["POST /accounts/login/"]
        assert login["num_failures"] == login["num_requests"] > 0
        assert "status 403" in done.stderr


def test_a_csrf_token_read_from_the_page_works_as_a_browser_does(
    tmp_path: Path, foreign: str
) -> None:
    """A CSRF token that the login page holds in a hidden input (Django's masked token,
    not the cookie's value): csrf_pattern reads it from the page and sends it back in
    X-CSRFToken on the login and every POST; Django's CSRF middleware accepts them all.
    A pattern that matches nothing on the page stops simulate mixed before any load."""
    pattern = '\'name="csrfmiddlewaretoken" value="([^"]+)"\''
    page = f'csrf_url = "/accounts/form/"\ncsrf_pattern = {pattern}\n'
    text = COOKIE_MAP.replace('csrf_url = "/accounts/csrf/"\ncsrf_cookie = "csrftoken"\n', page)
    (tmp_path / "map.toml").write_text(text)
    env = {
        **os.environ,
        "BARNSTORM_DASHBOARD_MAP": str(tmp_path / "map.toml"),
        "BARN_SECRET": SECRET,
    }
    users = ["-u", "3", "-r", "3", "-t", "6s", "--host", foreign]
    stats = locust_stats(
        "locust", "-f", "locustfiles/dashboard.py", "--headless", *users, env=env, timeout=120
    )
    entries = {entry["name"]: entry for entry in stats}
    for name in ("GET /accounts/form/", "POST /accounts/login/", "POST /v2/sites/[uuid]/ack/"):
        assert entries[name]["num_requests"] > 0, (name, sorted(entries))
        assert entries[name]["num_failures"] == 0, (name, entries[name])
    (tmp_path / "map.toml").write_text(text.replace("csrfmiddlewaretoken", "authenticity_token"))
    line = _refused_before_load(foreign, tmp_path / "map.toml")
    assert "login.csrf_pattern: matches nothing in GET /accounts/form/" in line


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The app taking telemetry only from the sensors it provisioned, and its database."""
    database = tmp_path / "strict.db"
    with foreign_app(database, "--strict-devices") as url:
        yield url, database


def test_devices_the_product_provisioned_send_under_its_ids(
    tmp_path: Path, strict: tuple[str, Path]
) -> None:
    """--device-map binds the simulated devices to the sensors the app provisioned (its
    UUIDs, sites and pens): every message is accepted and stored under the app's own IDs,
    the devices no row names are left out and counted; without the map the app refuses
    every message (422), which the run reports as failed."""
    import sqlite3

    url, database = strict
    sensors = export_devices(database, tmp_path / "devices.csv")
    report = tmp_path / "run.json"
    load = ("--farms", "2", "--http", f"{url}/v2/telemetry/", "--speed", "600")
    done = subprocess.run(
        [
            *(sys.executable, "-m", "simulator", *load, "--duration", "30m", "--quiet"),
            *("--device-map", str(tmp_path / "devices.csv"), "--report", str(report)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(report.read_text())
    totals, mapped = data["totals"], data["fleet"]["device_map"]
    assert totals["acknowledged"] == totals["sent"] > 0
    assert mapped["bound"] > 0
    assert mapped["left_out"] > 0  # gateways and the rest: the app has no such devices
    assert data["fleet"]["devices_in_run"] == mapped["bound"]
    assert "devices under the product's IDs" in done.stdout
    with sqlite3.connect(database) as db:
        stored = [json.loads(body) for (body,) in db.execute("SELECT body FROM foreign_upload")]
        sites = {dashed(s) for (s,) in db.execute("SELECT id FROM foreign_site")}
        pens = {dashed(p) for (p,) in db.execute("SELECT id FROM foreign_pen")}
    assert len(stored) == totals["sent"]
    assert {m["device_id"] for m in stored} <= sensors
    assert {m["farm_id"] for m in stored} <= sites
    assert {m["room_id"] for m in stored} <= pens
    refused = subprocess.run(
        [sys.executable, "-m", "simulator", *load, "--duration", "30m", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode != 0
    assert "http_422" in refused.stderr


def test_a_mixed_run_meets_the_products_devices_and_dashboards_on_its_farms(
    tmp_path: Path, strict: tuple[str, Path]
) -> None:
    """simulate mixed with BARNSTORM_DEVICE_MAP: the devices post under the app's sensor
    IDs (none refused) while the users open the pens of the app's own sites through the
    fleet's {farm_id}, which the map bound to them (a site the app does not hold is a
    404): no request of either kind fails."""
    url, database = strict
    export_devices(database, tmp_path / "devices.csv")
    (tmp_path / "map.toml").write_text(
        MAP.split("[sources.site]")[0]
        + "[views.pens]\nthink = [0.05, 0.2]\n[[views.pens.requests]]\n"
        + 'name = "GET /v2/sites/[farm]/pens/"\nurl = "/v2/sites/{farm_id}/pens/"\n'
    )
    env = {
        **os.environ,
        "BARNSTORM_DASHBOARD_MAP": str(tmp_path / "map.toml"),
        "BARNSTORM_DEVICE_MAP": str(tmp_path / "devices.csv"),
        "BARN_SECRET": SECRET,
    }
    stats = locust_stats(
        *("simulator", "mixed", "--farms", "2", "--users", "2", "--spawn-rate", "2"),
        *("--run-time", "10s", "--speed", "120", "--host", url),
        *("--http", f"{url}/v2/telemetry/"),
        env=env,
        timeout=180,
    )
    entries = {entry["name"]: entry for entry in stats}
    assert entries["GET /v2/sites/[farm]/pens/"]["num_requests"] > 0
    assert sum(e["num_requests"] for n, e in entries.items() if n.startswith("ingest ")) > 0
    assert all(entry["num_failures"] == 0 for entry in stats), stats


#: each simulated user logs in as a person of its own: the rows of the team's CSV.
LOGINS_MAP = """
[login]
users = "logins.csv"
url = "/auth/session/"
body = '{"user": "{csv:user}", "secret": "{csv:secret}"}'
token = "session.access"
scheme = "Token"

[views.site_list]
think = [0.05, 0.2]
[[views.site_list.requests]]
name = "GET /v2/sites/"
url = "/v2/sites/"
extract = { site_id = "items.*.uuid" }

[views.site]
think = [0.05, 0.2]
[[views.site.requests]]
name = "GET /v2/sites/[site_id]/pens/"
url = "/v2/sites/{site_id}/pens/"
[[views.site.requests]]
name = "GET /v2/sites/[site_id]/weather/"
url = "/v2/sites/{site_id}/weather/"
"""


def test_a_csv_of_logins_gives_each_user_a_login_of_its_own(tmp_path: Path, foreign: str) -> None:
    """Three users, three rows of logins: each of the app's people signs in (its own
    sign-ins in the app's database), and since each sees only its own sites (the vets two
    of three; another's is a 403), not a request fails: the sites each user opens came
    from its own listing. No login's secret is in Locust's output."""
    import sqlite3

    from tests.foreign.server import LOGINS

    with (tmp_path / "logins.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["user", "secret"])
        writer.writerows(
            (user, secret)
            for user, secret in LOGINS.items()
            if user in ("barn-manager", "vet-north", "vet-south")
        )
    (tmp_path / "map.toml").write_text(LOGINS_MAP)
    env = {**os.environ, "BARNSTORM_DASHBOARD_MAP": str(tmp_path / "map.toml")}
    users = ["-u", "3", "-r", "3", "-t", "8s", "--host", foreign]
    command = [sys.executable, "-m", "locust", "-f", "locustfiles/dashboard.py", "--headless"]
    done = subprocess.run(
        [*command, *users, "--json", "--only-summary"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    stats = json.loads(done.stdout)
    assert all(entry["num_failures"] == 0 for entry in stats), stats
    assert {e["name"] for e in stats if e["num_requests"]} >= {
        "POST /auth/session/",
        "GET /v2/sites/[site_id]/pens/",
    }
    with sqlite3.connect(tmp_path / "foreign.db") as db:
        signed = {user for (user,) in db.execute("SELECT user FROM foreign_signin")}
    assert signed == {"barn-manager", "vet-north", "vet-south"}
    assert not [s for s in LOGINS.values() if s in done.stdout + done.stderr]


@pytest.mark.parametrize(
    ("change", "secret", "key", "expected"),
    [
        (
            ("items.*.uuid", "items.*.id"),
            SECRET,
            "views.site_list.requests[0].extract.seen",
            'no key "id" in items.*',
        ),
        (
            ('"user": "barn-manager"', '"user": "newcomer"'),
            "fresh-hay-1",
            "views.site_list.requests[0].extract.seen",
            "an empty list at items; views pens, weather need it",
        ),
        (("", ""), "not-the-secret", "login", "POST /auth/session/ answered 401, expected 2xx"),
        (
            ('token = "session.access"', 'token = "access"'),
            SECRET,
            "login.token",
            'no key "access" in the answer',
        ),
    ],
)
def test_a_map_that_cannot_work_on_the_product_stops_before_any_load(
    tmp_path: Path, foreign: str, change: tuple[str, str], secret: str, key: str, expected: str
) -> None:
    """simulate mixed logs in once and opens the listings the map extracts from before
    it starts Locust: an extract path that matches nothing in the product's JSON, a
    listing that is empty while other views need its IDs, a refused login, a token path
    that is not in the login's answer: one line naming the map's key and what was
    expected, exit 2, no Locust started, no secret in the output."""
    text = MAP.split("[sources.site]")[0] + MAP.split('column = "uuid"')[1].replace(
        "{site}", "{seen}"
    )
    (tmp_path / "map.toml").write_text(text.replace(*change))
    line = _refused_before_load(foreign, tmp_path / "map.toml", secret)
    assert f"map.toml: {key}" in line
    assert expected in line
    assert secret not in line
