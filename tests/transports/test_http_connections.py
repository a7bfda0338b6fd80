"""HTTP ingest over kept-alive connections: a connection the target closes mid-request fails
its message as ``closed`` (not ``connect``: the target was up), and an idle connection is
given up before a server's idle timer can close it under a request in flight."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from simulator.messages import Message, Outcome
from simulator.transports.http import HttpTransport
from simulator.transports.http_clients import KEEPALIVE_EXPIRY
from tests.transports.test_transport_contract import RecordingSink

#: gunicorn's default keep-alive: the shortest idle timeout of the common servers.
SERVER_IDLE = 2.0

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


def _message(seq: int) -> Message:
    payload = json.dumps({"device_id": "d0", "seq": seq}).encode()
    return Message(0, 0, 0, "summary", seq, "t", payload, None)


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    """Read one request (head and body) and return its head; None at the end of the
    stream."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return head


class IdleTimerServer:
    """Answers 200 on kept-alive connections, and models the race of a server's idle timer
    (``SERVER_IDLE`` seconds) with a request: a request that reaches a connection idle for
    that long meets a connection the timer has just closed, and is dropped unanswered. With
    ``answer=False`` every request is dropped unanswered (a server that crashes on it)."""

    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.answered = 0
        self.dropped = 0
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        loop = asyncio.get_running_loop()
        idle_since = loop.time()
        try:
            while await read_request(reader) is not None:
                if not self.answer or loop.time() - idle_since >= SERVER_IDLE:
                    self.dropped += 1
                    break
                writer.write(OK)
                await writer.drain()
                self.answered += 1
                idle_since = loop.time()
        finally:
            writer.close()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serving(handle: Handler) -> AsyncIterator[str]:
    """An ingest URL on a free port of 127.0.0.1 whose connections ``handle`` serves."""
    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/ingest"
    finally:
        listener.close()


async def _send_spaced(url: str, count: int, spacing: float) -> RecordingSink:
    sink = RecordingSink()
    async with HttpTransport(sink, url, max_connections=1) as transport:
        for seq in range(count):
            transport.send(_message(seq))
            await transport.drain(5.0)
            if seq < count - 1:
                await asyncio.sleep(spacing)
    return sink


async def test_a_request_the_target_drops_unanswered_fails_as_closed() -> None:
    """The target reads the request and closes the connection without an answer: the
    message fails as "closed", telling the user the target was reachable but broke off."""
    server = IdleTimerServer(answer=False)
    async with serving(server.handle) as url:
        sink = await _send_spaced(url, 1, 0.0)
    assert server.dropped == 1
    assert [(outcome, error) for _, outcome, error in sink.done] == [(Outcome.FAILED, "closed")]


async def test_an_idle_connection_is_not_reused_past_a_servers_idle_timeout() -> None:
    """Requests spaced just past a 2-second server idle timeout: each goes out on a fresh
    connection, so the server's timer never closes a connection under a request, and every
    message is acknowledged (reusing the idle connection, as httpx's 5-second default
    would, fails every request after the first as "closed")."""
    assert KEEPALIVE_EXPIRY < SERVER_IDLE
    server = IdleTimerServer()
    async with serving(server.handle) as url:
        sink = await _send_spaced(url, 3, SERVER_IDLE + 0.05)
    assert [outcome for _, outcome, _ in sink.done] == [Outcome.ACKNOWLEDGED] * 3
    assert server.answered == 3
    assert server.dropped == 0
    assert server.connections == 3
