"""TLS and mutual TLS to a local Mosquitto, with certificates the test makes itself."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from simulator.backend.broker import free_port
from tests.conftest import Observer, observing
from tests.helpers import simulate

pytestmark = pytest.mark.slow  # every test here starts a process or a broker


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(
    folder: Path, stem: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate
) -> None:
    (folder / f"{stem}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (folder / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer if issuer else (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_certificates(folder: Path) -> None:
    """ca.pem, server.pem/.key (127.0.0.1), client.pem/.key, and other-ca.pem."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("barnstorm test CA", ca_key, None, ca=True)
    _write(folder, "ca", ca_key, ca)
    for stem, server in (("server", True), ("client", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        _write(folder, stem, key, _certificate(stem, key, (ca.subject, ca_key), server=server))
    other_key = ec.generate_private_key(ec.SECP256R1())
    _write(folder, "other-ca", other_key, _certificate("another CA", other_key, None, ca=True))


@dataclass
class TlsBroker:
    tls_port: int
    mtls_port: int
    folder: Path
    #: every message published on either TLS listener, seen by paho on a plain listener.
    observer: Observer


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[TlsBroker]:
    """Mosquitto with a TLS listener and a mutual-TLS listener (client certificate required)."""
    make_certificates(tmp_path)
    tls_port, mtls_port, plain_port = free_port(), free_port(), free_port()
    files = (
        f"cafile {tmp_path}/ca.pem\ncertfile {tmp_path}/server.pem\nkeyfile {tmp_path}/server.key\n"
    )
    config = tmp_path / "mosquitto.conf"
    config.write_text(
        "per_listener_settings true\nlog_dest none\n"
        + ("user root\n" if os.geteuid() == 0 else "")  # its own user could not read tmp_path
        + f"listener {tls_port} 127.0.0.1\nallow_anonymous true\n{files}"
        + f"listener {mtls_port} 127.0.0.1\nallow_anonymous true\n{files}require_certificate true\n"
        + f"listener {plain_port} 127.0.0.1\nallow_anonymous true\n"
    )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    process = subprocess.Popen([binary, "-c", str(config)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    for port in (tls_port, mtls_port, plain_port):
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "mosquitto did not open its TLS listeners"
            time.sleep(0.05)
    try:
        with observing("#", port=plain_port) as observer:
            yield TlsBroker(tls_port, mtls_port, tmp_path, observer)
    finally:
        process.terminate()
        process.wait(10)


def _run(*args: str) -> tuple[int, str, dict[str, int]]:
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        result = simulate(
            *("--farms", "2", "--speed", "900", "--duration", "30m", "--quiet", "--clean"),
            *("--report", str(report), *args),
        )
        totals = json.loads(report.read_text())["totals"] if report.exists() else {}
    return result.returncode, result.stderr, totals


def _delivered(broker: TlsBroker, totals: dict[str, int]) -> None:
    """Every message of a run was acknowledged, and paho on the broker's plain listener
    received exactly those, once each; then forget them for the next run."""
    assert totals["acknowledged"] == totals["sent"] > 0
    broker.observer.wait_for(totals["acknowledged"])
    assert broker.observer.count() == len(broker.observer.pairs()) == totals["acknowledged"]
    broker.observer.clear()


def test_tls_with_the_right_ca_delivers_and_a_wrong_ca_is_refused(tls_broker: TlsBroker) -> None:
    """Over mqtts:// with the broker's CA every message is delivered; with another CA
    the certificate is refused with one clear line and exit 1 (verification is on by
    default), and --insecure is what it takes to skip it."""
    url = f"mqtts://127.0.0.1:{tls_broker.tls_port}"
    code, stderr, totals = _run("--mqtt", url, "--ca-file", str(tls_broker.folder / "ca.pem"))
    assert code == 0, stderr
    _delivered(tls_broker, totals)

    code, stderr, _ = _run("--mqtt", url, "--ca-file", str(tls_broker.folder / "other-ca.pem"))
    assert code == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "TLS handshake" in lines[0]
    assert "CERTIFICATE_VERIFY_FAILED" in lines[0]
    assert "--ca-file" in lines[0]

    code, stderr, _ = _run("--mqtt", url)  # the system's CAs do not know this one either
    assert code == 1
    assert "CERTIFICATE_VERIFY_FAILED" in stderr

    code, stderr, totals = _run("--mqtt", url, "--insecure")
    assert code == 0, stderr
    _delivered(tls_broker, totals)


def test_mutual_tls_needs_the_client_certificate(tls_broker: TlsBroker) -> None:
    """On a listener that requires client certificates, devices with --cert-file and
    --key-file deliver everything; without them the broker refuses, in one line."""
    url = f"mqtts://127.0.0.1:{tls_broker.mtls_port}"
    ca = ("--ca-file", str(tls_broker.folder / "ca.pem"))
    client = [f"--cert-file={tls_broker.folder / 'client.pem'}"]
    client.append(f"--key-file={tls_broker.folder / 'client.key'}")
    code, stderr, totals = _run("--mqtt", url, *ca, *client)
    assert code == 0, stderr
    _delivered(tls_broker, totals)

    code, stderr, _ = _run("--mqtt", url, *ca)
    assert code == 1
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert str(tls_broker.mtls_port) in stderr
    assert "client certificate" in stderr


def test_each_device_can_bring_its_own_client_certificate(tls_broker: TlsBroker) -> None:
    """The credentials CSV gives every device its own certificate (cert_file, key_file,
    relative to the CSV): on the mutual-TLS listener they all connect and deliver without
    a run-wide --cert-file; a file that is not there is refused, naming line and column."""
    from simulator.fleet.build import DEFAULT_SEED
    from simulator.fleet.load import load_fleet

    fleet, _ = load_fleet(1, DEFAULT_SEED, None, None)
    credentials = tls_broker.folder / "devices.csv"
    credentials.write_text(
        "device_id,cert_file,key_file\n"
        + "".join(f"{device},client.pem,client.key\n" for device in fleet.devices.ids)
    )
    url = f"mqtts://127.0.0.1:{tls_broker.mtls_port}"
    ca = ("--ca-file", str(tls_broker.folder / "ca.pem"))
    code, stderr, totals = _run("--mqtt", url, *ca, "--credentials", str(credentials))
    assert code == 0, stderr
    _delivered(tls_broker, totals)

    credentials.write_text(f"device_id,cert_file,key_file\n{fleet.devices.ids[0]},nope.pem,x\n")
    code, stderr, _ = _run("--mqtt", url, *ca, "--credentials", str(credentials))
    assert code == 2
    assert "devices.csv: line 2: cert_file" in stderr
