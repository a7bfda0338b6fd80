"""The reference backend as a real process: ingest, dashboards, read-back and accounting."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulator.backend.broker import free_port
from simulator.exitcodes import EXIT_FAILURES, EXIT_LOSS, EXIT_OK
from tests.conftest import READBACK_HEADERS, Backends, Observer, wait_listening
from tests.helpers import ROOT, simulate
from tests.runner.test_faults import PrivateBroker

pytestmark = pytest.mark.slow  # every test here starts a process or a broker


@pytest.mark.parametrize(("batch", "http2"), [("1", False), ("5", False), ("1", True)])
def test_http_ingest_reconciles_to_zero_loss(
    tmp_path: Path, backend: Backends, batch: str, http2: bool
) -> None:
    """`simulate --http` posts every message (alone or batched per gateway, HTTP/1.1 or with
    HTTP/2 enabled) to the reference backend, and the read-back finds every acknowledged
    message: nothing lost, nothing late."""
    url = backend("--farms", "4")
    report_file = tmp_path / "report.json"
    result = simulate(
        "--farms",
        "4",
        "--speed",
        "300",
        "--duration",
        "20m",
        "--http",
        f"{url}/ingest",
        "--http-batch",
        batch,
        *(["--http2"] if http2 else []),
        "--readback",
        f"{url}/api/readback",
        "--report",
        str(report_file),
        "--quiet",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = result.report(report_file)
    assert report["target"]["kind"] == "http"
    assert report["target"]["connection"] == ("per-gateway" if batch != "1" else "per-device")
    totals = report["totals"]
    assert totals["sent"] > 200
    assert totals["acknowledged"] == totals["sent"]
    accounting = report["accounting"]
    assert accounting["lost"] == 0
    assert accounting["received"] == accounting["expected"] == totals["acknowledged"]
    assert accounting["duplicated"] == totals["duplicates_out"]
    assert accounting["late"] == 0


def _stored(url: str) -> set[tuple[str, int]]:
    """The (device_id, seq) pairs the backend's store holds, from its read-back."""
    stored = httpx.get(f"{url}/api/readback", headers=READBACK_HEADERS).json()["devices"]
    return {
        (device, seq)
        for device, entry in stored.items()
        for first_seq, last_seq in entry["seqs"]
        for seq in range(first_seq, last_seq + 1)
    }


def test_mqtt_ingest_through_the_backend_reconciles(
    tmp_path: Path, backend: Backends, mosquitto: str, topic_root: str, observer: Observer
) -> None:
    """Devices publish to Mosquitto, the backend ingests from it, and the read-back shows
    every message the broker acknowledged: the store holds exactly the (device, seq) pairs
    an independent paho subscriber received, and as many as the run acknowledged."""
    url = backend("--mqtt", mosquitto, "--topic", f"{topic_root}/#")
    report_file = tmp_path / "report.json"
    result = simulate(
        "--farms",
        "4",
        "--speed",
        "300",
        "--duration",
        "20m",
        "--mqtt",
        mosquitto,
        "--topic-template",
        f"{topic_root}/{{device_id}}/{{kind}}",
        "--readback",
        f"{url}/api/readback",
        "--report",
        str(report_file),
        "--quiet",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = result.report(report_file)
    accounting = report["accounting"]
    assert accounting["lost"] == 0
    assert accounting["received"] == accounting["expected"] > 200
    acknowledged = report["totals"]["acknowledged"]
    observer.wait_for(acknowledged)
    assert _stored(url) == observer.pairs()
    assert len(observer.pairs()) == acknowledged


def test_a_backend_outage_is_reported_exactly(
    tmp_path: Path, backend: Backends, mosquitto: str, topic_root: str, observer: Observer
) -> None:
    """Killing the backend mid-run loses what the broker acknowledged while it was down; the
    report's lost count and ranges are exactly the messages an independent subscriber saw
    and the backend never stored, not zero and not a guess."""
    port = free_port()
    database = tmp_path / "outage.db"
    url = backend("--mqtt", mosquitto, "--topic", f"{topic_root}/#", port=port, database=database)
    report_file = tmp_path / "report.json"
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator",
            "--farms",
            "3",
            "--speed",
            "120",
            "--duration",
            "20m",
            "--mqtt",
            mosquitto,
            "--topic-template",
            f"{topic_root}/{{device_id}}/{{kind}}",
            "--readback",
            f"{url}/api/readback",
            "--report",
            str(report_file),
            "--quiet",
            "--allow-loss",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # Kill the backend once messages flow (a busy machine starts the run slowly).
    deadline = time.monotonic() + 60
    while httpx.get(f"{url}/api/readback", headers=READBACK_HEADERS).json()["received"] < 20:
        assert time.monotonic() < deadline, "the run never reached the backend"
        assert run.poll() is None, run.communicate()
        time.sleep(0.2)
    first = backend.processes[0]
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    time.sleep(2.0)
    backend("--mqtt", mosquitto, "--topic", f"{topic_root}/#", port=port, database=database)
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 0, stdout + stderr
    report = json.loads(report_file.read_text())
    accounting = report["accounting"]
    assert accounting["lost"] > 0
    kept = _stored(url)
    observer.wait_for(report["totals"]["acknowledged"])
    seen = {(p["device_id"], p["seq"]) for _, p in observer.messages}
    assert accounting["lost"] == len(seen - kept)
    for lost in accounting["lost_ranges"]:
        for seq in range(lost["first_seq"], lost["last_seq"] + 1):
            assert (lost["device_id"], seq) in seen - kept
    assert b"LOST" in stdout


GOOD = {
    "device_id": "cm-1",
    "device_type": "cough_monitor",
    "farm_id": "farm-00001",
    "room_id": "farm-00001-s1-r01",
    "fw": "4.2.1",
    "seq": 0,
    "ts": "2026-01-01T00:00:00.000Z",
    "kind": "summary",
    "cough_count": 3,
}


def _publish_until_stored(broker_port: int, url: str, seq: int, timeout: float = 30.0) -> None:
    """Publish (with paho) message ``seq`` of cm-1 every 0.2 s until the backend stores it."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex}")
    client.connect("127.0.0.1", broker_port)
    client.loop_start()
    try:
        deadline = time.monotonic() + timeout
        while ("cm-1", seq) not in _stored(url):
            assert time.monotonic() < deadline, f"the backend never stored seq {seq}"
            message = json.dumps({**GOOD, "seq": seq})
            client.publish("ingest/cm-1", message, qos=1).wait_for_publish(5)
            time.sleep(0.2)
    finally:
        client.disconnect()
        client.loop_stop()


def test_the_backends_mqtt_ingest_comes_back_after_its_broker_restarts(
    tmp_path: Path, backend: Backends
) -> None:
    """The backend's MQTT ingest (paho, through aiomqtt) reconnects and subscribes again when
    its broker restarts: a message published after the restart is stored."""
    broker = PrivateBroker(tmp_path)
    broker.start()
    try:
        url = backend("--mqtt", f"mqtt://127.0.0.1:{broker.port}", "--topic", "ingest/#")
        _publish_until_stored(broker.port, url, 0)
        broker.stop()
        time.sleep(1.0)
        broker.start()
        _publish_until_stored(broker.port, url, 1)
    finally:
        broker.stop()


def test_bad_payloads_get_4xx_and_the_backend_keeps_serving(backend: Backends) -> None:
    """Invalid JSON, wrong types, missing fields and oversized messages are refused with 4xx,
    counted in the read-back, and a good message right after is still stored."""
    url = backend()
    good = GOOD
    with httpx.Client(base_url=url) as client:
        assert client.post("/ingest", content=b"{not json").status_code == 400
        assert client.post("/ingest", json={**good, "seq": "zero"}).status_code == 422
        missing = {k: v for k, v in good.items() if k != "device_id"}
        assert client.post("/ingest", json=missing).status_code == 422
        assert client.post("/ingest", json={**good, "blob": "x" * 20000}).status_code == 413
        assert client.post("/ingest", content=b"x" * (2 << 20)).status_code == 413
        assert client.post("/ingest", json=good).status_code == 202
        mixed = client.post("/ingest", json=[{**good, "seq": 1}, {**good, "ts": 5.5}])
        assert mixed.status_code == 207
        readback = client.get("/api/readback", headers=READBACK_HEADERS).json()
    assert readback["rejected"] == 6
    assert readback["devices"]["cm-1"]["received"] == 2


def test_dashboard_api_needs_a_login_and_serves_the_fleet(backend: Backends) -> None:
    """Login returns a token the dashboard endpoints require; farm list, farm overview with
    room health, room detail with series, device detail, alerts and acknowledging one work."""
    url = backend("--farms", "2", "--slow")
    day = {
        "device_id": "cm-00001-1-01-1",
        "device_type": "cough_monitor",
        "farm_id": "farm-00001",
        "room_id": "farm-00001-s1-r01",
        "fw": "4.2.1",
        "seq": 0,
        "ts": "2026-01-01T00:00:00.000Z",
        "kind": "daily",
        "rehs": 22,
        "rehs_color": "red",
    }
    summary = {
        **day,
        "seq": 1,
        "kind": "summary",
        "cough_count": 40,
        "ts": "2026-01-01T00:15:00.000Z",
    }
    with httpx.Client(base_url=url) as client:
        assert client.post("/ingest", json=[day, summary]).status_code == 202
        assert client.get("/api/farms").status_code == 401
        assert (
            client.post("/api/login", json={"username": "farmer", "password": "no"}).status_code
            == 401
        )
        token = client.post(
            "/api/login", json={"username": "farmer", "password": "barnstorm"}
        ).json()["token"]
        auth = {"authorization": f"Bearer {token}"}
        farms = client.get("/api/farms", headers=auth).json()
        assert farms[0]["farm_id"] == "farm-00001"
        assert farms[0]["name"] != "farm-00001"  # the fleet's name for it
        overview = client.get("/api/farms/farm-00001", headers=auth).json()
        assert overview["rooms"] == [{"room_id": "farm-00001-s1-r01", "health": "red"}]
        room = client.get("/api/farms/farm-00001/rooms/farm-00001-s1-r01", headers=auth).json()
        assert room["coughs"][0]["coughs"] == 40
        device = client.get("/api/devices/cm-00001-1-01-1", headers=auth).json()
        assert device["messages"] == 2
        alerts = client.get("/api/alerts", headers=auth).json()
        assert alerts[0]["kind"] == "red_score"
        ack = client.post(f"/api/alerts/{alerts[0]['id']}/ack", headers=auth)
        assert ack.json() == {"id": alerts[0]["id"], "acknowledged": True}
        assert client.get("/api/farms/farm-99999", headers=auth).status_code == 404


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL (127.0.0.1:5432), dropped afterwards."""
    import uuid

    import psycopg

    name = f"barnstorm_{uuid.uuid4().hex[:10]}"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_backend_on_postgresql_reconciles(
    tmp_path: Path, backend: Backends, postgres_url: str
) -> None:
    """With --database postgresql://..., the backend stores into PostgreSQL and a run over
    HTTP reconciles to zero loss, dashboards included."""
    url = backend("--database", postgres_url, "--farms", "3")
    report_file = tmp_path / "report.json"
    result = simulate(
        "--farms",
        "3",
        "--speed",
        "60",  # 10 s of real time: every device connects early even on a busy machine
        "--duration",
        "10m",
        "--http",
        f"{url}/ingest",
        "--http-batch",
        "4",
        "--readback",
        f"{url}/api/readback",
        "--report",
        str(report_file),
        "--quiet",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    accounting = result.report(report_file)["accounting"]
    assert accounting["lost"] == 0
    assert accounting["received"] == accounting["expected"] > 50
    with httpx.Client(base_url=url) as client:
        token = client.post(
            "/api/login", json={"username": "farmer", "password": "barnstorm"}
        ).json()["token"]
        farms = client.get("/api/farms", headers={"authorization": f"Bearer {token}"}).json()
    assert {f["farm_id"] for f in farms} == {"farm-00001", "farm-00002", "farm-00003"}


def test_per_device_credentials_over_http(tmp_path: Path, backend: Backends) -> None:
    """With --credentials each device posts with its own token; a backend that requires
    device credentials stores everything, and a device with a wrong token is refused with
    401, counted as failed (not lost) while the others go through: a tenth of the messages
    failed, more than --max-failed allows, so that run exits 5."""
    from simulator.fleet.build import DEFAULT_SEED
    from simulator.fleet.load import load_fleet

    fleet, _ = load_fleet(3, DEFAULT_SEED, None, None)
    ids = fleet.devices.ids
    good = tmp_path / "devices.csv"
    good.write_text("device_id,token\n" + "".join(f"{d},tok-{i}\n" for i, d in enumerate(ids)))
    wrong = tmp_path / "wrong.csv"
    wrong.write_text(good.read_text().replace(f"{ids[0]},tok-0", f"{ids[0]},nope"))
    url = backend("--farms", "3", "--device-credentials", str(good))
    for credentials, refused in ((good, 0), (wrong, 1)):
        report_file = tmp_path / f"{credentials.stem}.json"
        result = simulate(
            "--farms",
            "3",
            "--speed",
            "600",
            "--duration",
            "30m",
            "--http",
            f"{url}/ingest",
            "--credentials",
            str(credentials),
            "--readback",
            f"{url}/api/readback",
            "--report",
            str(report_file),
            "--quiet",
        )
        expected_code = EXIT_FAILURES if refused else EXIT_OK
        assert result.returncode == expected_code, result.stdout + result.stderr
        report = result.report(report_file)
        totals = report["totals"]
        assert report["accounting"]["lost"] == 0
        assert "tok-" not in json.dumps(report) + result.stdout + result.stderr
        if refused:
            assert totals["failed"] > 0
            assert totals["errors"] == {"http_401": totals["failed"]}
        else:
            assert totals["acknowledged"] == totals["sent"]
    bad = tmp_path / "bad.csv"
    bad.write_text("device_id,token\nnobody,x\n")
    result = simulate(
        "--farms", "3", "--http", f"{url}/ingest", "--credentials", str(bad), "--quiet"
    )
    assert result.returncode == 2
    assert 'bad.csv: line 2: device_id: "nobody" is not a device of this fleet' in result.stderr


def test_serve_says_where_it_listens_and_keeps_passwords_out(tmp_path: Path) -> None:
    """`simulate serve` prints where it listens, its database and how to log in, with the
    passwords of its database and broker URLs masked, and a line when it stops."""
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "simulator", "serve", "--port", str(port)),
            *("--database", "postgresql://postgres:sekrit@127.0.0.1:5432/postgres"),
            *("--mqtt", "mqtt://device:pa55word@127.0.0.1:1883"),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_listening(port, process)
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert f"on http://127.0.0.1:{port}" in stderr
    assert "database postgresql://postgres:***@127.0.0.1:5432/postgres" in stderr
    assert "from mqtt://device:***@127.0.0.1:1883" in stderr
    assert "demo logins farmer and advisor, password barnstorm" in stderr
    assert "sekrit" not in stderr
    assert "pa55word" not in stderr
    assert stderr.rstrip().endswith("barnstorm reference backend stopped")


def test_a_wrongly_typed_message_over_mqtt_is_refused_and_ingest_goes_on(
    backend: Backends, mosquitto: str, topic_root: str
) -> None:
    """Messages with wrongly typed envelope fields (one of which once stopped the MQTT
    ingest for good, silently) are refused and counted by reason in the read-back, and the
    good message published after them is stored."""
    url = backend("--mqtt", mosquitto, "--topic", f"{topic_root}/#")
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex}")
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    try:
        hostile = [
            {**GOOD, "seq": {"$gt": 0}},
            {**GOOD, "ts": [2026]},
            {**GOOD, "seq": 18446744073709551615},
            {**GOOD, "ts": "99999-01-01T00:00:00Z"},
        ]
        for message in hostile:
            payload = json.dumps(message)
            client.publish(f"{topic_root}/cm-1", payload, qos=1).wait_for_publish(5)
        client.publish(f"{topic_root}/cm-1", json.dumps(GOOD), qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 30
        while ("cm-1", 0) not in _stored(url):
            assert time.monotonic() < deadline, "the good message after the bad ones was lost"
            time.sleep(0.1)
    finally:
        client.disconnect()
        client.loop_stop()
    books = httpx.get(f"{url}/api/readback", headers=READBACK_HEADERS).json()
    assert books["rejected"] == len(hostile)
    assert set(books["rejected_by_reason"]) == {
        "seq has the wrong type",
        "ts has the wrong type",
        "seq out of range",
        "ts is not valid",
    }


def test_messages_the_broker_took_and_the_backend_never_stored_exit_4(
    tmp_path: Path, backend: Backends, mosquitto: str, topic_root: str
) -> None:
    """A backend that ingests another topic than the one the devices publish to stores
    none of what the broker acknowledged: the run prints LOST first, with the devices and
    seq ranges, and exits 4; with --allow-loss the same run exits 0."""
    url = backend("--mqtt", mosquitto, "--topic", f"{topic_root}/elsewhere/#")
    report_file = tmp_path / "report.json"
    args = [
        *("--farms", "1", "--speed", "300", "--duration", "10m", "--mqtt", mosquitto),
        *("--topic-template", f"{topic_root}/devices/{{device_id}}/{{kind}}"),
        *("--readback", f"{url}/api/readback", "--quiet"),
    ]
    lost = simulate(*args, "--report", str(report_file))
    assert lost.returncode == EXIT_LOSS, lost.stdout + lost.stderr
    report = lost.report(report_file)
    acknowledged = report["totals"]["acknowledged"]
    assert acknowledged > 5
    assert report["accounting"]["lost"] == acknowledged
    assert report["exit_code"] == EXIT_LOSS
    assert lost.stdout.lstrip().startswith("LOST")
    first = report["accounting"]["lost_ranges"][0]
    assert f"{first['device_id']} seq {first['first_seq']}" in lost.stdout
    allowed = simulate(*args, "--allow-loss")
    assert allowed.returncode == EXIT_OK, allowed.stdout + allowed.stderr
