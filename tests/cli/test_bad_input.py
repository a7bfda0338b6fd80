"""Bad input gets one line naming the flag, file or key, a non-zero exit, and no traceback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.backend.broker import free_port
from tests.helpers import ROOT, Completed, simulate

pytestmark = pytest.mark.slow  # every test here starts a process or a broker


def _one_line_error(result: Completed, code: int, *fragments: str) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("simulate: error: ")
    for fragment in fragments:
        assert fragment in line, line
    return line


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--farms", "0"], ["--farms", "0", ">=1"]),
        (["--farms", "many"], ["--farms", "many"]),
        (["--speed", "-1"], ["--speed", '"-1"', 'number > 0 or "max"']),
        (["--duration", "banana"], ["--duration", '"banana"', 'such as "30s"']),
        (["--duration", "0s"], ["--duration", "positive"]),
        (["--start", "someday"], ["--start", "ISO 8601"]),
        (["--qos", "3"], ["--qos"]),
        (["--mqtt", "http://x"], ["--mqtt", "mqtt://host:port"]),
        (["--device-types", "toaster"], ["--device-types", '"toaster"', "cough_monitor"]),
        (["--topic-template", "t/{farm}"], ["--topic-template", "{farm}"]),
        (["--topic-template", "t/#"], ["--topic-template", "wildcard"]),
        (["--report", "/nonexistent/dir/r.json"], ["--report", "does not exist"]),
        (["--max-failed", "5"], ["--max-failed", '"5"', 'such as "1%"']),
        (["--mqtt", "mqtt://127.0.0.1:1", "--keepalive", "70000"], ["--keepalive", "65535"]),
        (["--mqtt", "mqtt://127.0.0.1:1", "--password", "x"], ["--password", "--username"]),
        (["--mqtt", "mqtt://127.0.0.1:1", "--topic-alias"], ["--topic-alias", "MQTT 5"]),
        (["--output", "x.jsonl", "--verify"], ["--verify", "--output"]),
        (["--mqtt", "mqtt://127.0.0.1:1", "--client-id-prefix", ""], ["--client-id-prefix"]),
        (["--topic-template", "t/\udcff/{device_id}"], ["--topic-template", "UTF-8"]),
        (["--topic-template", "t//{device_id}"], ["--topic-template", "empty level"]),
        (["--topic-template", "$SYS/{device_id}"], ["--topic-template", "starts with $"]),
        (["--max-failed", "150%"], ["--max-failed", "0% to 100%"]),
        (["--no-such-flag"], ["--no-such-flag"]),
    ],
)
def test_bad_flags_name_the_flag(args: list[str], fragments: list[str]) -> None:
    """Each bad flag value is refused before anything starts, naming the flag and what was
    expected."""
    _one_line_error(simulate(*args, "--quiet"), 2, *fragments)


def _copy_dirs(tmp_path: Path) -> tuple[Path, Path]:
    farms = tmp_path / "farms"
    profiles = tmp_path / "profiles"
    shutil.copytree(ROOT / "farms", farms)
    shutil.copytree(ROOT / "device_profiles", profiles)
    return farms, profiles


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("file", "old", "new", "fragments"),
    [
        (
            "farms/eu_finisher.toml",
            "rooms_per_site = [4, 8]",
            "rooms_per_site = -5",
            ["eu_finisher.toml: layout.rooms_per_site", "-5 is not >= 1"],
        ),
        (
            "farms/eu_finisher.toml",
            "sites = [1, 3]",
            'sites = "two"',
            ["eu_finisher.toml: layout.sites", 'got "two"'],
        ),
        (
            "farms/eu_finisher.toml",
            'stage = "finisher"\n',
            "",
            ["eu_finisher.toml: production.stage", "missing"],
        ),
        (
            "farms/eu_finisher.toml",
            "cough_monitor = { per_room = 1 }",
            "toaster = { per_room = 1 }",
            ["eu_finisher.toml: devices.toaster", "no device profile"],
        ),
        (
            "profiles/cough_monitor.toml",
            'model = "room_temperature", offset_sd = 0.3, noise_sd = 0.1',
            'model = "thermometer_9000", offset_sd = 0.3, noise_sd = 0.1',
            [
                "cough_monitor.toml: messages.summary.fields.temp_c_1.model",
                'unknown signal model "thermometer_9000"',
            ],
        ),
        (
            "profiles/cough_monitor.toml",
            'every = "15m"',
            "every = true",
            ["cough_monitor.toml: messages.summary.every", "expected a duration"],
        ),
        (
            "profiles/cough_monitor.toml",
            "sd = 1.5, min = 40.0",
            'sd = "loud", min = 40.0',
            ["cough_monitor.toml: messages.summary.fields", "expected a number"],
        ),
        (
            "profiles/gateway.toml",
            'device_type = "gateway"\n',
            "",
            ["gateway.toml: device_type", "missing"],
        ),
        (
            "profiles/climate_node.toml",
            "[messages.reading]",
            "[messages.reading\n",
            ["climate_node.toml", "not valid TOML"],
        ),
        (
            "profiles/cough_monitor.toml",
            'source = "rehs"',
            'source = "rehs_later"',
            ["cough_monitor.toml: messages.daily.fields.rehs_color.source", '"rehs_later"'],
        ),
        (
            "profiles/gateway.toml",
            'id_prefix = "gw"',
            'id_prefix = "gw+"',
            ["device type gateway", "gw+-00001", "MQTT wildcard", "topic template"],
        ),
    ],
)
def test_bad_files_name_the_file_and_key(
    tmp_path: Path, file: str, old: str, new: str, fragments: list[str]
) -> None:
    """A farm or profile file with a wrong type, an unknown model, a negative count or a
    missing field is refused with its file and key named."""
    farms, profiles = _copy_dirs(tmp_path)
    _edit(tmp_path / file, old, new)
    result = simulate(
        "--farms",
        "2",
        "--farms-dir",
        str(farms),
        "--profiles-dir",
        str(profiles),
        "--output",
        str(tmp_path / "out.jsonl"),
        "--speed",
        "max",
        "--quiet",
    )
    _one_line_error(result, 2, *fragments)


def test_unreachable_broker_is_one_line_and_still_writes_the_report(tmp_path: Path) -> None:
    """A broker nobody listens on ends the run with exit 1, a line naming the broker, and a
    report that says the run failed."""
    report = tmp_path / "r.json"
    port = free_port()
    result = simulate(
        "--farms", "2", "--mqtt", f"mqtt://127.0.0.1:{port}", "--report", str(report), "--quiet"
    )
    _one_line_error(result, 1, f"cannot connect to mqtt://127.0.0.1:{port}: connection refused")
    data = result.report(report)
    assert data["outcome"] == "failed"
    assert "connection refused" in data["error"]
    assert data["totals"]["sent"] == 0


@pytest.fixture
def password_broker(tmp_path: Path) -> Iterator[int]:
    """A Mosquitto on a free port that requires user barn / password storm."""
    passwords = tmp_path / "passwd"
    passwords.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "barn", "storm"], check=True)
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    # As root, mosquitto drops to its own user, who cannot read pytest's private tmp dir.
    user = "user root\n" if os.geteuid() == 0 else ""
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\n"
        f"password_file {passwords}\nlog_dest none\n{user}"
    )
    process = subprocess.Popen([shutil.which("mosquitto") or "mosquitto", "-c", str(config)])
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert time.monotonic() < deadline, "mosquitto with a password file did not start"
        time.sleep(0.05)
    yield port
    process.terminate()
    process.wait(10)


def test_refused_login_is_one_line(tmp_path: Path, password_broker: int) -> None:
    """Wrong credentials end the run with exit 1 and a line saying the login was refused,
    without the password anywhere in the output or the report."""
    report = tmp_path / "r.json"
    result = simulate(
        "--farms",
        "2",
        "--mqtt",
        f"mqtt://127.0.0.1:{password_broker}",
        "--username",
        "barn",
        "--password",
        "wrong-secret",
        "--report",
        str(report),
        "--quiet",
    )
    _one_line_error(result, 1, f"mqtt://127.0.0.1:{password_broker} refused the login")
    assert "wrong-secret" not in result.stdout + result.stderr + report.read_text()
    ok = simulate(
        "--farms",
        "2",
        "--mqtt",
        f"mqtt://barn:storm@127.0.0.1:{password_broker}",
        "--duration",
        "5m",
        "--speed",
        "100",
        "--quiet",
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_config_file_keys_are_checked(tmp_path: Path) -> None:
    """A --config file sets defaults by option name; an unknown key is named with its file."""
    good = tmp_path / "good.toml"
    good.write_text(
        'farms = 2\nspeed = "max"\nduration = "1h"\nquiet = true\n'
        f'output = "{tmp_path / "o.jsonl"}"\n'
    )
    assert simulate("--config", str(good)).returncode == 0
    assert (tmp_path / "o.jsonl").stat().st_size > 0
    bad = tmp_path / "bad.toml"
    bad.write_text("farmz = 2\n")
    _one_line_error(simulate("--config", str(bad)), 2, "bad.toml: farmz", "not an option")


def _hostile_files(folder: Path) -> dict[str, Path]:
    """Files for the sweep below: nested too deeply, not UTF-8, wrongly typed, out of the run."""
    files = {
        "deep.toml": "farms = " + "[" * 3000 + "]" * 3000 + "\n",
        "float.toml": "farms = 1.7\n",
        "bool.toml": "farms = true\n",
        "word.toml": 'speed = "fast"\n',
        "plain.toml": '[users.olga]\npassword = "hunter2"\nfarms = "*"\n',
        "late.toml": '[[events]]\ntype = "heatwave"\nat = "30d"\nduration = "1d"\n',
    }
    paths = {name: folder / name for name in files}
    for name, text in files.items():
        paths[name].write_text(text)
    paths["bad.csv"] = folder / "bad.csv"
    paths["bad.csv"].write_bytes(b"device_id,username,password\nfarm\xff,u,p\n")
    paths["binary"] = folder / "binary.json"
    paths["binary"].write_bytes(bytes(range(256)) * 8)
    return paths


@pytest.fixture(scope="module")
def taken_port() -> Iterator[int]:
    """A port something already listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


HOSTILE = [
    (["--seed", "-5"], 2, ["--seed", "-5"]),
    (["--config", "{deep}"], 2, ["deep.toml", "nested too deeply"]),
    (["--config", "{float}", "--output", "{o}"], 2, ["float.toml: farms", "1.7"]),
    (["--config", "{bool}", "--output", "{o}"], 2, ["bool.toml: farms", "got true"]),
    (["--config", "{word}", "--output", "{o}"], 2, ["word.toml: speed", '"fast"']),
    (["--output", "{o}", "--credentials", "{badcsv}"], 2, ["bad.csv", "not UTF-8"]),
    (["--start", "9999-12-31T23:59:00Z", "--duration", "2d"], 2, ["--duration", "9999-12-31"]),
    (["--start", "1969-07-20"], 2, ["--start", "from 1970 on"]),
    (["--speed", "1e-9", "--output", "{o}"], 2, ["--speed", "of real time"]),
    (["--connect-rate", "1e309", "--output", "{o}"], 2, ["--connect-rate"]),
    (["--mqtt", "mqtt://127.0.0.1:1", "--client-id-prefix", "x" * 70_000], 2, ["too long"]),
    (["--mqtt", "mqtt://[::1"], 2, ["--mqtt", "not a URL"]),
    (["--http", "http://[::1/ingest"], 2, ["--http", "expected http://"]),
    (["--http", "http://127.0.0.1:1/ingest", "--readback", "nope"], 2, ["--readback"]),
    (["--mqtt", "{mosquitto}", "--prometheus", ":{taken}"], 2, ["--prometheus", "cannot listen"]),
    (["--output", "{o}", "--scenario", "{deep}"], 2, ["deep.toml", "nested too deeply"]),
    (["--output", "{o}", "--scenario", "{late}"], 2, ["late.toml: events[0].at", "outside"]),
    (["--output", "{o}", "--baseline", "{binary}"], 2, ["--baseline", "not JSON"]),
    (["--output", "{o}", "--processes", "100000"], 2, ["--processes", "cores"]),
    (["--output", "{o}", "--processes", "3", "--farms", "2"], 2, ["--processes", "2 farm"]),
    (["--output", "{o}", "--farms", "10000000"], 2, ["--farms", "of memory"]),
    (["stats", "{binary}"], 2, ["binary.json", "no message"]),
    (["compare", "{binary}", "{binary}"], 2, ["CURRENT", "not JSON"]),
    (["serve", "--database", "/nonexistent/dir/b.db"], 2, ["--database", "cannot open"]),
    (
        ["serve", "--database", "postgresql://nobody:pw@127.0.0.1:5432/nodb"],
        1,
        ["cannot use postgresql://nobody:***@127.0.0.1:5432/nodb", "nobody"],
    ),
    (["serve", "--port", "{taken}"], 2, ["--port", "cannot listen"]),
    (["serve", "--mqtt", "mqtt://127.0.0.1:1"], 1, ["cannot connect to mqtt://127.0.0.1:1"]),
    (["serve", "--host", "0.0.0.0"], 2, ["--host", "--users"]),
    (["serve", "--users", "{plain}"], 2, ["plain.toml: users.olga.password", "hash"]),
    (["mixed", "--host", "notaurl"], 2, ["--host", "expected http://"]),
    (["--mqtt", "{mosquitto}", "--otlp-receiver", "nowhere"], 2, ["--otlp-receiver", "HOST:PORT"]),
    (["--mqtt", "{mosquitto}", "--otlp-receiver", "127.0.0.1:{taken}"], 2, ["--otlp-receiver"]),
    (["--mqtt", "{mosquitto}", "--trace-sample", "150%"], 2, ["--trace-sample", "0 to 1"]),
    (["--mqtt", "{mosquitto}", "--trace-mqtt"], 2, ["--trace-mqtt", "--trace-sample"]),
    (["--mqtt", "{mosquitto}", "--trace-envelope", "tp"], 2, ["--trace-envelope", "give both"]),
    (
        [
            "--mqtt",
            "{mosquitto}",
            "--trace-mqtt",
            "--trace-sample",
            "1%",
            "--trace-envelope",
            "a b",
        ],
        2,
        ["--trace-envelope", "JSON field name"],
    ),
    (
        ["--output", "{o}", "--otlp-receiver", "127.0.0.1:1", "--processes", "2", "--farms", "4"],
        2,
        ["--processes", "--otlp-receiver"],
    ),
    (["mixed", "--host", "http://127.0.0.1:1", "--trace-sample", "half"], 2, ["--trace-sample"]),
]


@pytest.mark.parametrize(("args", "code", "fragments"), HOSTILE)
def test_hostile_input_is_one_line_and_the_right_exit_code(
    tmp_path: Path,
    taken_port: int,
    mosquitto: str,
    args: list[str],
    code: int,
    fragments: list[str],
) -> None:
    """Each input that once gave a traceback, a wrong exit code or a run that silently did
    something else is refused with one line naming the flag, file or key (exit 2 for bad
    input, 1 for a target that refuses), before any load is sent."""
    names = {name.split(".")[0]: str(path) for name, path in _hostile_files(tmp_path).items()}
    names["badcsv"] = names.pop("bad")
    names |= {"o": str(tmp_path / "o.jsonl"), "taken": str(taken_port), "mosquitto": mosquitto}
    filled = [arg.format(**names) if "{" in arg and len(arg) < 200 else arg for arg in args]
    command = (
        filled if filled[0] in ("stats", "compare", "serve", "mixed") else [*filled, "--quiet"]
    )
    if filled[0] == "serve":
        command += [] if "--port" in filled else ["--port", str(free_port())]
        command += [] if "--database" in filled else ["--database", str(tmp_path / "b.db")]
    line = _one_line_error(simulate(*command, env={"BARNSTORM_FARMS": "1"}), code, *fragments)
    assert "internal error" not in line


def test_settings_without_effect_are_warned_about(tmp_path: Path) -> None:
    """MQTT options given to a history run (on the command line or in a config file) are
    warned about by name; the same run without them warns of nothing."""
    config = tmp_path / "run.toml"
    config.write_text("keepalive = 30\n")
    args = ["--farms", "1", "--output", str(tmp_path / "o.jsonl"), "--speed", "max", "--quiet"]
    warned = simulate(*args, "--qos", "2", "--config", str(config))
    assert warned.returncode == 0, warned.stderr
    assert "simulate: warning: --qos has no effect on a history file (--output)" in warned.stderr
    assert "simulate: warning: --keepalive has no effect" in warned.stderr
    quiet = simulate(*args)
    assert "warning" not in quiet.stderr
