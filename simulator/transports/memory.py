"""An in-memory transport: keeps every message, for tests and for measuring the engine alone."""

from __future__ import annotations

import json
from typing import Any

from simulator.messages import Message, Outcome
from simulator.transports.base import ResultSink, Transport


class MemoryTransport(Transport):
    """Acknowledges every message at once and keeps it in :attr:`messages`.

    ``keep=False`` counts without keeping, to measure the engine without the memory.
    """

    name = "memory"

    def __init__(self, sink: ResultSink, *, keep: bool = True) -> None:
        super().__init__(sink)
        self.keep = keep
        self.messages: list[Message] = []

    def send(self, message: Message) -> None:
        self.check_open()
        self.sink.message_sent(message)
        if self.keep:
            self.messages.append(message)
        self.sink.message_done(message, Outcome.ACKNOWLEDGED)

    def send_many(self, messages: list[Message]) -> None:
        self.check_open()
        if self.keep:
            self.messages.extend(messages)
        self.sink.messages_written(messages)

    def payloads(self) -> list[dict[str, Any]]:
        """Every kept payload, decoded."""
        return [json.loads(m.payload) for m in self.messages]
