"""The file transport: every message as one JSON line ``{"topic": ..., "payload": {...}}``.

With ``--speed max`` this writes months of a fleet's history in minutes, for seeding a
database or checking realism. Output is byte-identical for the same seed and start.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from ..errors import ConfigError, SendError
from .base import Message, Outcome, ResultSink, Transport

_FLUSH_BYTES = 1 << 20


class FileTransport(Transport):
    """Writes JSON Lines to ``path`` (``-`` for standard output)."""

    name = "file"

    def __init__(self, sink: ResultSink, path: Path) -> None:
        super().__init__(sink)
        self.path = path
        self._handle: BinaryIO | None = None
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._pending: list[Message] = []

    async def open(self) -> None:
        try:
            self._handle = self.path.open("wb")
        except OSError as exc:
            raise ConfigError("--output", f"cannot write {self.path}: {exc.strerror}") from None

    def send(self, message: Message) -> None:
        self.check_open()
        self.sink.message_sent(message)
        topic = message.topic.replace("\\", "\\\\").replace('"', '\\"').encode()
        self._buffer.append(b'{"topic":"' + topic + b'","payload":' + message.payload + b"}\n")
        self._pending.append(message)
        self._buffered += len(message.payload) + 64
        if self._buffered >= _FLUSH_BYTES:
            self._flush()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def _flush(self) -> None:
        if self._handle is None or not self._buffer:
            return
        pending, self._pending = self._pending, []
        try:
            self._handle.write(b"".join(self._buffer))
            outcome, error = Outcome.ACKNOWLEDGED, None
        except OSError as exc:
            outcome, error = Outcome.FAILED, SendError.kind
            self._write_error = exc
        self._buffer.clear()
        self._buffered = 0
        for message in pending:
            self.sink.message_done(message, outcome, error)

    async def drain(self, timeout: float) -> None:
        self._flush()

    async def close(self) -> None:
        if self._handle is not None:
            self._flush()
            self._handle.close()
            self._handle = None
        await super().close()
