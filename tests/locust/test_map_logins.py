"""A map's CSV of logins (``[login] users = "logins.csv"``): each simulated user takes a
row of its own; a file that cannot serve every user is refused with one line naming the
file (and row) and what was expected, before any load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from simulator.errors import ConfigError
from simulator.locust.dashboard_map import load_map
from tests.helpers import ROOT

MAP = """
[login]
users = "logins.csv"
url = "/auth/session/"
body = '{"user": "{csv:user}", "secret": "{csv:secret}"}'

[views.home]
[[views.home.requests]]
url = "/v2/sites/"
"""


def _map(tmp_path: Path, logins: str, text: str = MAP) -> Path:
    (tmp_path / "logins.csv").write_text(logins)
    (tmp_path / "map.toml").write_text(text)
    return tmp_path / "map.toml"


def test_each_user_takes_a_row_in_turn_with_its_values_escaped(tmp_path: Path) -> None:
    """Users 0, 1, 2 log in as the rows in order, the fourth as the first again; a value
    with a quote stays valid JSON in the body."""
    loaded = load_map(_map(tmp_path, 'user,secret\nann,a1\nbob,"b""2"\ncy,c3\n'))
    assert loaded.login is not None
    bodies = [loaded.login.for_user(i)[1] for i in range(4)]
    assert bodies[0] == '{"user": "ann", "secret": "a1"}'
    assert bodies[1] == '{"user": "bob", "secret": "b\\"2"}'
    assert bodies[3] == bodies[0]


@pytest.mark.parametrize(
    ("logins", "expected"),
    [
        ("user,password\nann,a1\n", 'under "secret", got user, password'),
        ("user,secret\n", 'under "secret", "user", got user, secret'),
        ("user,secret\nann,a1\nann,a1\n", "logins.csv:3: the same login twice"),
        ("user,secret\nann,\n", 'logins.csv:2: no value in column "secret"'),
    ],
)
def test_a_csv_of_logins_that_cannot_serve_is_refused(
    tmp_path: Path, logins: str, expected: str
) -> None:
    """A column the body names and the file lacks, no rows, a login twice, an empty value:
    a ConfigError naming the file (and row) and what was expected."""
    with pytest.raises(ConfigError) as caught:
        load_map(_map(tmp_path, logins))
    assert expected in str(caught.value)
    assert "logins.csv" in str(caught.value)


def test_a_csv_placeholder_without_a_csv_of_logins_is_refused(tmp_path: Path) -> None:
    """``{csv:user}`` with no ``users`` file: the login's key, and what it needs."""
    text = MAP.replace('users = "logins.csv"\n', "")
    with pytest.raises(ConfigError, match=r'login.body.*\{csv:secret\} needs users = "logins.csv"'):
        load_map(_map(tmp_path, "", text))


def test_a_mixed_run_with_a_bad_csv_of_logins_stops_before_any_load(tmp_path: Path) -> None:
    """``simulate mixed`` reads the map before it starts anything: one line naming the
    file and the column, exit 2, no Locust, no secret of the file in the output."""
    path = _map(tmp_path, "user,password\nann,sup3r-s3cret\n")
    done = subprocess.run(
        [sys.executable, "-m", "simulator", "mixed", "--host", "http://127.0.0.1:9"],
        cwd=ROOT,
        env={"BARNSTORM_DASHBOARD_MAP": str(path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "logins.csv" in lines[0]
    assert '"secret"' in lines[0]
    assert "sup3r-s3cret" not in done.stderr + done.stdout
