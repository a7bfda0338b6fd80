"""Secrets stay secret: passwords from the command line, the environment and the
credentials CSV appear in no log, report or help text."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import pytest

from simulator.fleet.build import DEFAULT_SEED
from simulator.fleet.load import load_fleet
from tests.conftest import Backends
from tests.helpers import simulate

pytestmark = pytest.mark.slow  # every test here starts a process or a broker


def _leaks(secrets: list[str], texts: dict[str, str]) -> list[str]:
    return [
        f"{secret} in {where}"
        for where, text in texts.items()
        for secret in secrets
        if secret in text
    ]


def test_passwords_appear_in_no_log_report_or_help(
    tmp_path: Path, mosquitto: str, topic_root: str
) -> None:
    """A run with a password on the command line, one in the environment and one per device
    in the credentials CSV (and one that fails to connect with a password in its URL) writes
    none of them to its output, the JSON, HTML, CSV and JUnit reports, the time series, or
    `--help`."""
    tag = uuid.uuid4().hex[:10]
    cli_secret, env_secret, csv_secret = f"cli-{tag}", f"env-{tag}", f"csv-{tag}"
    fleet, _ = load_fleet(1, DEFAULT_SEED, None, None)
    credentials = tmp_path / "devices.csv"
    credentials.write_text(
        "device_id,username,password\n"
        + "".join(f"{d},user-{i},{csv_secret}-{i}\n" for i, d in enumerate(fleet.devices.ids))
    )
    outputs = {
        "report": tmp_path / "report.json",
        "html": tmp_path / "report.html",
        "junit": tmp_path / "sla.xml",
        "timeseries": tmp_path / "series.jsonl",
    }
    run = simulate(
        *("--farms", "1", "--mqtt", mosquitto, "--username", "farmer", "--password", cli_secret),
        *("--credentials", str(credentials), "--speed", "120", "--duration", "5m", "--quiet"),
        *("--topic-template", f"{topic_root}/{{device_id}}/{{kind}}", "--csv", str(tmp_path / "t")),
        *(arg for name, path in outputs.items() for arg in (f"--{name}", str(path))),
        *("--sla", "ingest.p95<10s"),
    )
    assert run.returncode == 0, run.stderr
    refused = simulate(
        *("--farms", "1", "--mqtt", f"mqtt://farmer:{cli_secret}@127.0.0.1:1", "--quiet"),
        *("--duration", "10s", "--report", str(tmp_path / "refused.json")),
        env={"BARNSTORM_PASSWORD": env_secret},
    )
    assert refused.returncode == 1
    helped = simulate("run", "--help", env={"BARNSTORM_PASSWORD": env_secret})
    texts = {
        "run output": run.stdout + run.stderr,
        "refused output": refused.stdout + refused.stderr,
        "help": helped.stdout + helped.stderr,
        "refused report": (tmp_path / "refused.json").read_text(),
        **{name: path.read_text() for name, path in outputs.items()},
        **{p.name: p.read_text() for p in tmp_path.glob("t_*.csv")},
    }
    assert len(texts) == 10  # 4 outputs, 2 CSV files, 2 outputs of runs, a report, help
    assert "cannot connect" in refused.stderr or "refused" in refused.stderr
    assert not _leaks([cli_secret, env_secret, csv_secret], texts)
    assert '"password": "***"' in texts["report"]


def test_a_secret_through_every_door_is_in_no_output_and_reports_are_private(
    tmp_path: Path, backend: Backends
) -> None:
    """Secrets given in an ingest URL, a read-back URL in a config file, --token, the
    read-back token in the environment and per-device tokens in the credentials CSV appear
    in no output of a run over HTTP (the summary, the JSON, HTML, CSV and JUnit reports, the
    time series) nor in the error line and report of a run whose read-back fails; every
    report is readable by its owner only."""
    tag = uuid.uuid4().hex[:10]
    url_secret, config_secret, flag_secret = f"url-{tag}", f"cfg-{tag}", f"flag-{tag}"
    env_secret, csv_secret = f"env-{tag}-0123456789", f"csv-{tag}"
    url = backend("--farms", "1", env={"BARNSTORM_READBACK_TOKEN": env_secret})
    host = url.removeprefix("http://")
    fleet, _ = load_fleet(1, DEFAULT_SEED, None, None)
    credentials = tmp_path / "devices.csv"
    credentials.write_text(
        "device_id,token\n"
        + "".join(f"{d},{csv_secret}-{i}\n" for i, d in enumerate(fleet.devices.ids))
    )
    config = tmp_path / "run.toml"
    config.write_text(f'readback = "http://reader:{config_secret}@{host}/api/readback"\n')
    outputs = {
        "report": tmp_path / "report.json",
        "html": tmp_path / "report.html",
        "junit": tmp_path / "sla.xml",
        "timeseries": tmp_path / "series.jsonl",
    }
    run = simulate(
        *(
            "--config",
            str(config),
            "--farms",
            "1",
            "--http",
            f"http://dev:{url_secret}@{host}/ingest",
        ),
        *("--token", flag_secret, "--credentials", str(credentials), "--quiet"),
        *("--speed", "120", "--duration", "5m", "--csv", str(tmp_path / "t")),
        *(arg for name, path in outputs.items() for arg in (f"--{name}", str(path))),
        *("--sla", "ingest.p95<10s"),
        env={"BARNSTORM_READBACK_TOKEN": env_secret},
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(outputs["report"].read_text())
    assert report["accounting"]["lost"] == 0
    assert report["accounting"]["received"] > 0
    refused = simulate(
        *("--farms", "1", "--http", f"http://dev:{url_secret}@{host}/ingest", "--quiet"),
        *("--readback", f"http://{host}/api/readback?token={flag_secret}"),
        *("--readback-token", f"wrong-{env_secret}", "--duration", "10s"),
        *("--report", str(tmp_path / "refused.json")),
    )
    assert refused.returncode == 1
    assert "read-back mark from http" in refused.stderr
    helped = simulate("run", "--help", env={"BARNSTORM_READBACK_TOKEN": env_secret})
    written = [*outputs.values(), *tmp_path.glob("t_*.csv"), tmp_path / "refused.json"]
    texts = {
        "run output": run.stdout + run.stderr,
        "refused output": refused.stdout + refused.stderr,
        "help": helped.stdout + helped.stderr,
        **{path.name: path.read_text() for path in written},
    }
    assert len(texts) == 10  # 3 outputs, 4 reports, 2 CSV files, the refused report
    secrets = [url_secret, config_secret, flag_secret, env_secret, csv_secret]
    assert not _leaks(secrets, texts)
    assert f"http://dev:***@{host}/ingest" in texts["report.json"]
    assert "token=%2A%2A%2A" in texts["refused.json"] or "token=***" in texts["refused.json"]
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in written)
