"""Brokers of the tests' own, each on a free port of 127.0.0.1, stopped after the test:
Mosquitto with any configuration (a restrictive one: logins, an ACL, a small in-flight
quota, a message size limit), NATS server's MQTT listener, and aedes (Node) when Node and
its package can be had."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from simulator.backend.broker import free_port
from tests.conftest import port_open

USER, PASSWORD = "barn", "storm"


def _wait(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not port_open("127.0.0.1", port):
        assert process.poll() is None, f"{what} exited at start"
        assert time.monotonic() < deadline, f"{what} did not listen on {port}"
        time.sleep(0.05)


@contextmanager
def mosquitto(folder: Path, *lines: str, logins: bool = False) -> Iterator[int]:
    """A Mosquitto with ``lines`` of configuration; with ``logins``, only barn/storm."""
    port = free_port()
    config = [f"listener {port} 127.0.0.1", "log_dest none", "set_tcp_nodelay true"]
    if logins:
        passwords = folder / "passwd"
        passwords.write_text("")
        subprocess.run(["mosquitto_passwd", "-b", str(passwords), USER, PASSWORD], check=True)
        config += ["allow_anonymous false", f"password_file {passwords}"]
    else:
        config.append("allow_anonymous true")
    if os.geteuid() == 0:  # as root it drops to its own user, who cannot read pytest's tmp
        config.append("user root")
    path = folder / f"mosquitto-{port}.conf"
    path.write_text("\n".join([*config, *lines]) + "\n")
    process = subprocess.Popen(
        [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(path)]
    )
    try:
        _wait(port, process, "mosquitto")
        yield port
    finally:
        process.terminate()
        process.wait(10)


def restrictive_lines(folder: Path, root: str, *extra: str) -> list[str]:
    """An ACL letting barn write ``root/DEVICE/KIND`` for every kind but heartbeats, and read
    all of ``root`` (which may hold wildcards: ``a/+`` for runs under a/<their own>)."""
    acl = folder / "acl"
    acl.write_text(
        f"user {USER}\n"
        + "".join(f"topic readwrite {root}/+/{kind}\n" for kind in ("summary", "reading", "daily"))
        + f"topic read {root}/#\n"
    )
    return [f"acl_file {acl}", *extra]


@contextmanager
def nats(folder: Path) -> Iterator[int]:
    """A nats-server with JetStream and its MQTT listener on a free port."""
    port = free_port()
    config = folder / "nats.conf"
    config.write_text(
        f"listen: 127.0.0.1:{free_port()}\nserver_name: barnstorm-test\n"
        f'jetstream {{ store_dir: "{folder}/js" }}\nmqtt {{ listen: 127.0.0.1:{port} }}\n'
    )
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    process = subprocess.Popen(
        [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait(port, process, "nats-server")
        yield port
    finally:
        process.terminate()
        process.wait(10)


#: aedes as the interop tests run it, pinned (its MQTT 5 is not there: it refuses it).
AEDES = "aedes@0.51.3"


def aedes_available(folder: Path) -> Path | None:
    """A folder with aedes installed from the npm registry, or None without Node and npm
    (the matrix then leaves aedes out and says so)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return None
    installed = folder / "node_modules" / "aedes"
    if not installed.exists():
        result = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent", AEDES],
            cwd=folder,
            capture_output=True,
            timeout=300,
        )
        if result.returncode != 0:
            return None
    return folder


@contextmanager
def aedes(folder: Path) -> Iterator[int]:
    """An aedes broker on a free port (Node), from ``aedes_available``'s folder."""
    port = free_port()
    script = folder / "broker.js"
    script.write_text(
        "const aedes = require('aedes')();\n"
        "const server = require('net').createServer(aedes.handle);\n"
        f"server.listen({port}, '127.0.0.1');\n"
    )
    process = subprocess.Popen([shutil.which("node") or "node", str(script)], cwd=folder)
    try:
        _wait(port, process, "aedes")
        yield port
    finally:
        process.terminate()
        process.wait(10)
