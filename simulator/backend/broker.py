"""The embedded MQTT broker of the default run, so ``simulate`` works on a fresh machine.

It is a child process bound to 127.0.0.1 on a free port: the system's ``mosquitto`` when
one is on PATH (fast, the usual production broker), otherwise amqtt, a maintained
pure-Python broker installed with barnstorm. amqtt takes a few thousand messages a
second, plenty for a demo fleet in real time, not a stress target: real stress runs go
to a real broker with ``--mqtt``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from simulator.errors import ConfigError, ConnectError

BROKER_KINDS = ("auto", "mosquitto", "amqtt")
_READY_TIMEOUT = 20.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def choose_broker(kind: str) -> str:
    """The broker an ``auto``/``mosquitto``/``amqtt`` choice means on this machine."""
    if kind not in BROKER_KINDS:
        raise ConfigError(
            "--embedded-broker", f'expected one of {", ".join(BROKER_KINDS)}, got "{kind}"'
        )
    if kind == "auto":
        return "mosquitto" if shutil.which("mosquitto") else "amqtt"
    if kind == "mosquitto" and not shutil.which("mosquitto"):
        raise ConfigError("--embedded-broker", "mosquitto is not on PATH (use amqtt or auto)")
    return kind


class ChildServer:
    """A server barnstorm runs as a child process on 127.0.0.1 and a free port, for the
    length of an ``async with`` block; subclasses say which command to run."""

    #: what the server is called in messages.
    kind = "server"

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self._process: asyncio.subprocess.Process | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    def _command(self, workdir: Path) -> list[str]:
        raise NotImplementedError

    def _environment(self) -> dict[str, str] | None:
        """The child's environment (None: this process's). Secrets go here, never into
        the command line, which every user of the machine can read."""
        return None

    async def __aenter__(self) -> Self:
        self._workdir = tempfile.TemporaryDirectory(prefix=f"barnstorm-{self.kind}-")
        self.port = free_port()
        self._process = await asyncio.create_subprocess_exec(
            *self._command(Path(self._workdir.name)),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=self._environment(),
            start_new_session=True,  # Ctrl-C reaches barnstorm, which stops the broker last
        )
        try:
            await self._wait_ready()
        except BaseException:
            await self.stop()
            raise
        return self

    async def _wait_ready(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _READY_TIMEOUT
        assert self._process is not None
        while loop.time() < deadline:
            if self._process.returncode is not None:
                err = b""
                if self._process.stderr is not None:
                    err = await self._process.stderr.read()
                detail = err.decode(errors="replace").strip().splitlines()
                raise ConnectError(
                    f"the embedded {self.kind} exited at start"
                    + (f": {detail[-1]}" if detail else "")
                )
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection(self.host, self.port)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return
            await asyncio.sleep(0.05)
        raise ConnectError(f"the embedded {self.kind} did not listen within {_READY_TIMEOUT:g}s")

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 5.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


class EmbeddedBroker(ChildServer):
    """``async with EmbeddedBroker("auto") as broker:`` a broker on 127.0.0.1:broker.port."""

    def __init__(self, kind: str = "auto") -> None:
        super().__init__()
        self.kind = choose_broker(kind)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def _command(self, workdir: Path) -> list[str]:
        if self.kind == "mosquitto":
            config = workdir / "mosquitto.conf"
            config.write_text(
                f"listener {self.port} {self.host}\n"
                "allow_anonymous true\n"
                "persistence false\n"
                # Without it Nagle's algorithm holds PUBACKs back (DESIGN.md).
                "set_tcp_nodelay true\n"
                "max_inflight_messages 1000\n"
                "max_queued_messages 100000\n"
                "log_dest none\n"
            )
            return [shutil.which("mosquitto") or "mosquitto", "-c", str(config)]
        return [
            sys.executable,
            "-m",
            "simulator.backend.embedded_amqtt",
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
