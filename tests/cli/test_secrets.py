"""Secrets stay secret: passwords from the command line, the environment and the
credentials CSV appear in no log, report or help text."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from simulator.fleet.build import DEFAULT_SEED
from simulator.fleet.load import load_fleet
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
