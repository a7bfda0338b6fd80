"""barnstorm against a backend that is not its own: a Django REST Framework app with UUID
ids, its own URLs and login, instrumented with OpenTelemetry as a team's would be. The
mixed run's report finds its N+1 (with the statement Django wrote) and the time its
tracing does not see, from its spans alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.backend.broker import free_port
from tests.foreign.running import foreign_app
from tests.foreign.server import SECRET
from tests.helpers import ROOT

pytestmark = pytest.mark.slow  # the app, the receiver and Locust are processes

PENS = "GET /v2/sites/[uuid]/pens/"
WEATHER = "GET /v2/sites/[uuid]/weather/"
#: the team's map: its login (a secret from the environment), its URLs, ids taken from
#: its own answers.
FOREIGN_MAP = f"""
[login]
url = "/auth/session/"
body = '{{"user": "barn-manager", "secret": "{{env:BARN_SECRET}}"}}'
token = "session.access"
scheme = "Token"

[views.site_pens]
think = [0.05, 0.2]
[[views.site_pens.requests]]
name = "GET /v2/sites/"
url = "/v2/sites/"
extract = {{ site = "items.1.uuid" }}
[[views.site_pens.requests]]
name = "{PENS}"
url = "/v2/sites/{{site}}/pens/"

[views.weather]
think = [0.05, 0.2]
[[views.weather.requests]]
name = "GET /v2/sites/"
url = "/v2/sites/"
extract = {{ site = "items.0.uuid" }}
[[views.weather.requests]]
name = "{WEATHER}"
url = "/v2/sites/{{site}}/weather/"
"""


@pytest.fixture
def foreign(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """The foreign app exporting its spans to a receiver port (its URL and that port)."""
    otlp = free_port()
    with foreign_app(tmp_path / "foreign.db", "--otlp", f"http://127.0.0.1:{otlp}") as url:
        yield url, otlp


def test_a_foreign_backends_n_plus_one_and_blind_spot_from_its_spans(
    tmp_path: Path, foreign: tuple[str, int]
) -> None:
    """A mixed run against the Django app, its devices posting to its telemetry endpoint:
    the pens list's N+1 is named with Django's statement (a query per sensor for its last
    reading), the weather endpoint's uninstrumented call is a blind spot, both are shown
    before the verdicts on the page, and every span is joined or counted."""
    url, otlp = foreign
    (tmp_path / "barn.toml").write_text(FOREIGN_MAP)
    report, html = tmp_path / "r.json", tmp_path / "r.html"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "simulator", "mixed", "--farms", "1", "--users", "4"),
            *("--spawn-rate", "4", "--run-time", "15s", "--speed", "60"),
            *("--host", url, "--http", f"{url}/v2/telemetry/"),
            *("--otlp-receiver", f"127.0.0.1:{otlp}", "--report", str(report)),
            *("--html", str(html)),
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "BARNSTORM_DASHBOARD_MAP": str(tmp_path / "barn.toml"),
            "BARN_SECRET": SECRET,
            "BARNSTORM_RUN_ID": f"foreign-{os.getpid()}",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert SECRET not in done.stdout + done.stderr + report.read_text() + html.read_text()
    data = json.loads(report.read_text())
    traces = data["traces"]
    assert traces["spans"]["received"] == traces["spans"]["joined"] + traces["spans"]["unjoined"]
    found = next(f for f in data["n_plus_one"] if f["from"] == "spans")
    assert found["name"] == PENS, data["n_plus_one"]
    assert "foreign_reading" in found["statement"], found
    blind = {b["name"]: b for b in traces["blind"]}
    assert WEATHER in blind, traces["flows"]
    assert blind[WEATHER]["uncovered_share"] >= 0.5
    assert PENS not in blind
    flows = {f["name"]: f for f in traces["flows"]}
    assert flows["GET /v2/sites/"]["db_spans_per_request"] <= 2
    assert flows["ingest climate_node"]["traces"] > 0  # the devices' posts, traced too
    page = html.read_text()
    verdicts = page.index("<h2>Verdicts</h2>")
    assert page.index(f"N+1 in {PENS}") < verdicts
    assert page.index(f"Blind spot in {WEATHER}") < verdicts
