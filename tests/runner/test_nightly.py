"""The nightly pipelines in examples/nightly/, run as their CI would run them (the GitLab one
by gitlab-ci-local with its shell executor, against a fake of GitLab's package registry;
the GitHub one step by step with a fake ``gh``), night after night against two reference
backends over one database holding a month of a fleet's data: the normal one, and the
one with the room chart's N+1 (``serve --slow``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.exitcodes import EXIT_OK, EXIT_SLA
from tests.conftest import Backends
from tests.gitlab_fake import FakeGitLab
from tests.helpers import ROOT, seed_history

pytestmark = pytest.mark.slow  # backends, a month of ingest, a Locust run a night

NIGHTLY = ROOT / "examples" / "nightly"
#: gitlab-ci-local as the test runs it, pinned: 4.73 and later need Node 22.
GITLAB_CI_LOCAL = "gitlab-ci-local@4.72.0"
ROOM = "GET /api/farms/[id]/rooms/[id] (7 days)"
#: the dashboards' room chart, opened often, and the farm list; the password from the CI.
ROOM_MAP = f"""
[login]
url = "/api/login"
body = '{{"username": "farmer", "password": "{{env:BARNSTORM_LOGIN_PASSWORD}}"}}'

[views.farm_list]
think = [0.1, 0.3]
[[views.farm_list.requests]]
name = "GET /api/farms"
url = "/api/farms"

[views.room_detail]
think = [0.1, 0.3]
[[views.room_detail.requests]]
name = "{ROOM}"
url = "/api/farms/{{farm_id}}/rooms/{{room_id}}?from={{from}}&to={{to}}"
"""
TOKEN = "job-token-of-the-night"
#: the team's rules (BARNSTORM_RULES): what the build alone decides. Latency on a CI machine
#: shared with other jobs moves with them from one night to the next, a minute apart here.
RULES = """\
# queries and bytes per request, failures and status mix: the backend's, not the machine's
queries<=baseline*1.2+1   # the N+1 of --slow
bytes<=baseline*1.5+1024
error_rate<=baseline+0.5%
statuses<=baseline+5%
"""


class Staging:
    """A normal and a --slow reference backend over one database with a month of data."""

    def __init__(self, normal: str, slow: str) -> None:
        self.normal = normal
        self.slow = slow


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Staging]:
    folder = tmp_path_factory.mktemp("staging")
    backends = Backends(folder)
    database = folder / "staging.db"
    try:
        normal = backends("--farms", "2", database=database)
        slow = backends("--farms", "2", "--slow", database=database)
        seed_history(f"{normal}/ingest", farms=2, days=30, batch=200)
        yield Staging(normal, slow)
    finally:
        backends.stop_all()


@pytest.fixture(scope="module")
def gitlab_ci_local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """gitlab-ci-local installed from the npm registry (Node is on CI machines)."""
    npm = shutil.which("npm")
    # No skip: a pipeline test that passes by not running proves nothing.
    assert npm is not None, "no npm here: install Node.js (scripts/setup on a fresh machine)"
    assert shutil.which("node") is not None, "no node here: gitlab-ci-local cannot run"
    folder = tmp_path_factory.mktemp("gitlab-ci-local")
    installed = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--silent", GITLAB_CI_LOCAL],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    return folder / "node_modules" / ".bin" / "gitlab-ci-local"


def _load(staging: str) -> dict[str, str]:
    """The team's CI variables: a small load for a test, its map and its password."""
    return {
        "BARNSTORM_PACKAGE": "barnstorm",  # installed here already: pip has nothing to do
        "BARNSTORM_HOST": staging,
        "BARNSTORM_HTTP": f"{staging}/ingest",
        "BARNSTORM_DASHBOARD_MAP": "rooms.toml",
        "BARNSTORM_RULES": "rules.txt",
        "BARNSTORM_LOGIN_PASSWORD": "barnstorm",
        "BARNSTORM_FARMS": "2",
        "BARNSTORM_USERS": "6",
        "BARNSTORM_RUN_TIME": "8s",
        "BARNSTORM_SPEED": "120",
    }


def _environment() -> dict[str, str]:
    """This machine's environment with barnstorm's virtualenv first on PATH, as the job's
    ``pip install`` would leave it."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }


def _baselines(archive: bytes | None) -> list[str]:
    """The reports in the baseline archive the pipeline uploaded."""
    assert archive is not None
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        return sorted(Path(name).name for name in tar.getnames() if name.endswith(".json"))


def _room(report: Path) -> dict[str, Any]:
    data = json.loads(report.read_text())
    entry: dict[str, Any] = next(r for r in data["requests"] if r["name"] == ROOM)
    return entry


def _first_broken(output: str) -> str:
    """The first broken rule in ``simulate compare``'s output, scope and verdict."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if re.search(r"\s1\. ", line):
            return " ".join(lines[i : i + 2])
    raise AssertionError(f"no broken rule in:\n{output[-3000:]}")


def test_gitlab_nights_make_a_baseline_pass_fail_on_the_n_plus_one_and_accept(
    tmp_path: Path, staging: Staging, gitlab_ci_local: Path
) -> None:
    """The GitLab pipeline, copied as it is and run by gitlab-ci-local night after night:
    a token the package registry refuses fails the job before any load (no "first night"
    on an error); night one (nothing in the registry) becomes the baseline; night two, the
    same build, passes and joins it; night three, on the --slow backend, exits 3 with the
    room chart's queries rule first and does not become a baseline; accepting night three
    makes it the only baseline; night four, the normal backend again, passes and shows the
    room chart's queries as improved."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(NIGHTLY / "gitlab-ci.yml", project / ".gitlab-ci.yml")
    (project / "rooms.toml").write_text(ROOM_MAP)
    (project / "rules.txt").write_text(RULES)
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(
        ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", "commit", "-qm", "ci"],
        cwd=project,
        check=True,
    )
    artifacts = project / ".gitlab-ci-local" / "artifacts" / "barnstorm-nightly"

    with FakeGitLab(project=42, token=TOKEN) as gitlab:

        def pipeline(source: str, variables: dict[str, str]) -> tuple[int, str]:
            settings = {
                "CI_PIPELINE_SOURCE": source,
                "BARNSTORM_NIGHTLY": "1",
                "CI_API_V4_URL": gitlab.url,
                "CI_PROJECT_ID": "42",
                "CI_JOB_TOKEN": TOKEN,
                **variables,
            }
            command = [str(gitlab_ci_local), "--force-shell-executor", "--color=false"]
            for name, value in settings.items():
                command += ["--variable", f"{name}={value}"]
            done = subprocess.run(
                command,
                cwd=project,
                env={
                    **_environment(),
                    "GCL_IGNORE_PREDEFINED_VARS": "CI_PIPELINE_SOURCE,CI_API_V4_URL,"
                    "CI_PROJECT_ID,CI_JOB_TOKEN",
                },
                capture_output=True,
                text=True,
                timeout=300,
            )
            return done.returncode, done.stdout + done.stderr

        def newest() -> bytes | None:
            return gitlab.newest("barnstorm-baseline", "nightly", "baselines.tar.gz")

        code, output = pipeline("schedule", {**_load(staging.normal), "CI_JOB_TOKEN": "wrong"})
        assert code != 0, output[-3000:]
        assert "cannot list the project's packages" in output
        assert "tonight's run becomes the first" not in output
        assert not (artifacts / "reports" / "mixed.json").exists()  # no load sent
        assert newest() is None

        code, output = pipeline("schedule", _load(staging.normal))
        assert code == 0, output[-4000:]
        assert "no baseline in the package registry yet" in output
        assert len(_baselines(newest())) == 1
        assert _room(artifacts / "reports" / "mixed.json")["backend"]["queries_per_request"] == 1

        code, output = pipeline("schedule", _load(staging.normal))
        assert code == 0, output[-4000:]
        assert "judging tonight against 1 earlier night(s)" in output
        assert "no regression against the baseline" in output
        assert len(_baselines(newest())) == 2
        assert (artifacts / "reports" / "compare.xml").exists()

        code, output = pipeline("schedule", _load(staging.slow))
        assert code != 0, output[-4000:]
        assert "barnstorm-nightly" in output
        assert "REGRESSION" in output
        first = _first_broken(output)
        assert ROOM in first, first
        assert "queries" in first, first
        night_three = tmp_path / "night-3"
        shutil.copytree(artifacts, night_three)
        room = _room(night_three / "reports" / "mixed.json")
        assert room["backend"]["queries_per_request"] > 1000
        assert len(_baselines(newest())) == 2  # a failed night is no baseline
        compared = json.loads((night_three / "reports" / "compare.json").read_text())
        assert compared["broken"][0]["metric"] == "queries"
        job = re.search(r"BARNSTORM_ACCEPT_JOB=(\d+)", output)
        assert job is not None, output[-3000:]
        gitlab.artifacts[int(job.group(1))] = night_three

        code, output = pipeline("web", {"BARNSTORM_ACCEPT_JOB": job.group(1)})
        assert code == 0, output[-4000:]
        assert "barnstorm-nightly" not in output  # the accepting pipeline runs no load
        (accepted,) = _baselines(newest())
        assert accepted.endswith(".json")

        code, output = pipeline("schedule", _load(staging.normal))
        assert code == 0, output[-4000:]
        flat = " ".join(output.split())
        assert f"improved: {ROOM}: queries" in flat, flat[-3000:]
        assert len(_baselines(newest())) == 2


FAKE_GH = """#!/usr/bin/env bash
# gh, as the workflow calls it: run list (the newest successful run), run download.
set -euo pipefail
if [ "$1 $2" = "run list" ]; then cat "$FAKE_GH/last_success" 2>/dev/null || true; exit 0; fi
if [ "$1 $2" = "run download" ]; then
  run="$3"; shift 3
  while [ $# -gt 0 ]; do
    case "$1" in --name) name="$2"; shift 2;; --dir) dir="$2"; shift 2;; *) shift;; esac
  done
  [ -d "$FAKE_GH/runs/$run/$name" ] || { echo "no artifact $name in run $run" >&2; exit 1; }
  mkdir -p "$dir"; cp -r "$FAKE_GH/runs/$run/$name/." "$dir/"; exit 0
fi
echo "fake gh: $*" >&2; exit 2
"""


def test_github_nights_make_a_baseline_pass_and_fail_on_the_n_plus_one(
    tmp_path: Path, staging: Staging
) -> None:
    """The GitHub workflow's steps, in order as Actions runs them, with a fake ``gh`` and
    the artifacts kept between runs: night one becomes the baseline, night two (the same
    build) passes, night three (--slow) exits 3 with the room chart's queries rule first
    and uploads no baselines."""
    workflow = yaml.safe_load((NIGHTLY / "github-workflow.yml").read_text())
    job = workflow["jobs"]["stress"]
    steps = [s for s in job["steps"] if "run" in s and not s["run"].startswith("pip install")]
    uploads = [s["with"] for s in job["steps"] if s.get("uses", "").startswith("actions/upload")]
    fake = tmp_path / "gh"
    (fake / "bin").mkdir(parents=True)
    (fake / "bin" / "gh").write_text(FAKE_GH)
    (fake / "bin" / "gh").chmod(0o755)

    def night(number: int, staging_url: str) -> tuple[int, str]:
        folder = tmp_path / f"night-{number}"
        folder.mkdir()
        (folder / "rooms.toml").write_text(ROOM_MAP)
        (folder / "rules.txt").write_text(RULES)
        env = {
            **_environment(),
            **_load(staging_url),
            "FAKE_GH": str(fake),
            "GITHUB_REPOSITORY": "farm/backend",
            "GITHUB_RUN_ID": str(number),
            "BARNSTORM_BASELINES": "5",
        }
        env["PATH"] = f"{fake / 'bin'}{os.pathsep}{env['PATH']}"
        output, code = "", 0
        for step in steps:
            done = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", step["run"]],
                cwd=folder,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            output += done.stderr + done.stdout  # the verdicts last, where a failure shows them
            code = done.returncode
            if code:
                break
        for upload in uploads:  # actions/upload-artifact, as its `if:` says
            if upload["name"] == "barnstorm-baselines" and code:
                continue
            shutil.copytree(folder / upload["path"], fake / "runs" / str(number) / upload["name"])
        if code == 0:
            (fake / "last_success").write_text(f"{number}\n")
        return code, output

    code, output = night(1, staging.normal)
    assert code == EXIT_OK, output[-3000:]
    assert "tonight's run becomes the first baseline" in output
    code, output = night(2, staging.normal)
    assert code == EXIT_OK, output[-3000:]
    assert "no regression against the baseline" in output
    assert len(list((fake / "runs" / "2" / "barnstorm-baselines").glob("*.json"))) == 2
    code, output = night(3, staging.slow)
    assert code == EXIT_SLA, output[-3000:]
    first = _first_broken(output)
    assert ROOM in first, first
    assert "queries" in first, first
    assert not (fake / "runs" / "3" / "barnstorm-baselines").exists()
    assert (fake / "last_success").read_text().strip() == "2"
