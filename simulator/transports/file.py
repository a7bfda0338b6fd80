"""The file transport: every message as one JSON line ``{"topic": ..., "payload": {...}}``.

With ``--speed max`` this writes months of a fleet's history in minutes, for seeding a
database or checking realism. Output is byte-identical for the same seed and start. The
file's name chooses its format: ``.jsonl.gz`` streams the same lines through gzip (no
name or time in its header, so that it too is byte-identical for the same seed and start;
the shards of a parallel history are gzip members, which concatenate into one file).
"""

from __future__ import annotations

import gzip
import re
import time
from pathlib import Path
from typing import BinaryIO

import orjson

from simulator.errors import ConfigError, SendError
from simulator.messages import Message, Outcome
from simulator.transports.base import ResultSink, Transport

_FLUSH_MESSAGES = 4096
_FLUSH_AGE = 0.5  # seconds
#: gzip's level for .jsonl.gz: the fastest, so that compressing keeps up with the engine
#: (JSON lines of a fleet compress about 8x even so).
GZIP_LEVEL = 1
_PART = re.compile(r"\.part\d+$")


def history_format(path: Path) -> str:
    """``parquet``, ``jsonl.gz`` or ``jsonl``, by the file's name (a shard's ``.partN``
    aside)."""
    name = _PART.sub("", path.name).lower()
    if name.endswith(".parquet"):
        return "parquet"
    return "jsonl.gz" if name.endswith(".gz") else "jsonl"


class FileTransport(Transport):
    """Writes JSON Lines to ``path`` (``-`` for standard output)."""

    name = "file"

    def __init__(self, sink: ResultSink, path: Path) -> None:
        super().__init__(sink)
        self.path = path
        self._handle: BinaryIO | None = None
        self._raw: BinaryIO | None = None  # the file under a gzip stream
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._pending: list[Message] = []
        self._flushed_at = time.monotonic()
        #: the encoded start of each topic's lines.
        self._heads: dict[str, bytes] = {}
        #: the first write error, if any (the messages it hit are counted as failed).
        self.error: str | None = None

    async def open(self) -> None:
        try:
            handle: BinaryIO = self.path.open("wb")
        except OSError as exc:
            raise ConfigError("--output", f"cannot write {self.path}: {exc.strerror}") from None
        if history_format(self.path) == "jsonl.gz":
            self._raw = handle
            handle = gzip.GzipFile(  # type: ignore[assignment]
                filename="", mode="wb", fileobj=handle, compresslevel=GZIP_LEVEL, mtime=0
            )
        self._handle = handle

    def send(self, message: Message) -> None:
        self.send_many([message])

    def send_many(self, messages: list[Message]) -> None:
        self.check_open()
        heads = self._heads
        append = self._buffer.append
        for message in messages:
            head = heads.get(message.topic)
            if head is None:
                head = b'{"topic":' + orjson.dumps(message.topic) + b',"payload":'
                heads[message.topic] = head
            append(head)
            append(message.payload)
            append(b"}\n")
        self._pending.extend(messages)
        self._buffered += len(messages)
        # Full, or old enough that the counts (live view, Prometheus) would lag behind.
        if self._buffered >= _FLUSH_MESSAGES or time.monotonic() - self._flushed_at > _FLUSH_AGE:
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
        except OSError as exc:
            for message in pending:
                self.sink.message_sent(message)
                self.sink.message_done(message, Outcome.FAILED, SendError.kind)
            self.error = f"cannot write {self.path}: {exc.strerror or exc}"
        else:
            self.sink.messages_written(pending)
        self._buffer.clear()
        self._buffered = 0
        self._flushed_at = time.monotonic()

    async def drain(self, timeout: float) -> None:
        self._flush()

    async def close(self) -> None:
        if self._handle is not None:
            self._flush()
            self._handle.close()
            self._handle = None
            if self._raw is not None:
                self._raw.close()
                self._raw = None
        await super().close()
