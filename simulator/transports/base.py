"""The transport contract: how a message leaves barnstorm.

A transport is opened and closed in one ``async with`` block. Between the two, the engine
asks it to ``connect`` each connection (a device, or a site gateway that publishes for
its site) and hands it messages with :meth:`Transport.send`, which never waits for the
target: the outcome of every message (acknowledged, written without confirmation,
failed) is reported later to the :class:`ResultSink` the transport was given. That is
what keeps the schedule open-loop: a slow target delays acknowledgements, never sends.

Transports translate their libraries' errors into :mod:`simulator.errors` types; the
engine and the metrics never see a raw library exception.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any, Protocol, Self

from simulator.errors import ClosedError
from simulator.messages import Message, Outcome


class ResultSink(Protocol):
    """Where transports report what happened (the metrics)."""

    def message_sent(self, message: Message) -> None: ...

    def message_done(
        self, message: Message, outcome: Outcome, error: str | None = None
    ) -> None: ...

    def message_retried(self, message: Message, reason: str) -> None:
        """``message`` is sent again (``reason``: e.g. ``http_429``); its outcome comes later."""
        ...

    def messages_sent(self, messages: list[Message]) -> None:
        """Bulk form of ``message_sent`` for messages handed over at one instant."""
        ...

    def messages_done(self, messages: list[Message], outcome: Outcome) -> None:
        """Bulk form of ``message_done`` for messages settled at one instant without an
        error (ACKNOWLEDGED or UNCONFIRMED)."""
        ...

    def connection_event(self, event: str, error: str | None = None) -> None:
        """``up``, ``failed``, ``lost`` or ``reconnected``; ``error`` names an error kind."""
        ...

    def server_timing(self, type_code: int, header: str, size: int) -> None:
        """A response's ``Server-Timing`` header for a request of ``size`` bytes carrying
        messages of device type ``type_code`` (-1: a batch of several types)."""
        ...

    def messages_written(self, messages: list[Message]) -> None:
        """Bulk form of sent + acknowledged, for transports whose delivery is a local
        write (file, memory): no latency worth measuring."""
        ...


class Transport(ABC):
    """Base of every transport; see the module docstring for the contract."""

    #: short name for reports ("mqtt", "file", "memory").
    name = "transport"

    def __init__(self, sink: ResultSink) -> None:
        self.sink = sink
        self._state = "new"
        self._connected: set[int] = set()
        self._ever: set[int] = set()

    async def __aenter__(self) -> Self:
        if self._state == "closed":
            raise ClosedError(f"the {self.name} transport is closed and cannot be opened again")
        await self.open()
        self._state = "open"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Prepare resources (files, pools) before the first connection."""

    async def connect(self, connection: int) -> None:
        """Establish connection ``connection`` (a fleet device index); idempotent.

        Connection-less transports (file, memory) only report it up, once.
        """
        self.check_open()
        if connection not in self._connected:
            self._connected.add(connection)
            self.sink.connection_event("reconnected" if connection in self._ever else "up")
            self._ever.add(connection)

    def is_connected(self, connection: int) -> bool:
        return connection in self._connected

    async def disconnect(self, connection: int) -> None:
        """Drop connection ``connection`` (a scenario's outage); ``connect`` brings it back."""
        if connection in self._connected:
            self._connected.discard(connection)
            self.sink.connection_event("lost")

    @abstractmethod
    def send(self, message: Message) -> None:
        """Hand ``message`` over without waiting; report its outcome to the sink."""

    def send_many(self, messages: list[Message]) -> None:
        """Hand over a tick's messages in order; transports may do it in bulk."""
        for message in messages:
            self.send(message)

    @property
    def in_flight(self) -> int:
        """Messages handed over whose outcome is not known yet."""
        return 0

    def facts(self) -> dict[str, Any]:
        """What the run's report says of how this transport talked to its target (the
        protocol version an MQTT broker took, for one); nothing by default."""
        return {}

    async def ready(self) -> None:  # noqa: B027 - optional hook
        """Return when the target can take more (the engine waits on it at speed max only,
        where "as fast as possible" means as fast as the target takes it)."""

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for messages in flight to settle."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.in_flight and asyncio.get_running_loop().time() < deadline:
            await self._wait_round(0.02)

    async def _wait_round(self, poll: float) -> None:
        """One round of waiting for answers to what is in flight: ``poll`` seconds here;
        barnstorm's own MQTT client may instead read its acknowledgements in rounds."""
        await asyncio.sleep(poll)

    async def close(self) -> None:
        """Release everything; the transport cannot be used afterwards."""
        self._state = "closed"

    def check_open(self) -> None:
        if self._state != "open":
            raise ClosedError(f"the {self.name} transport is {self._state}, not open")
