"""Both HTTP clients under the HTTP transport (aiohttp, the default, and httpx) keep one
contract: the same outcome and error kind for each answer or its absence, Server-Timing
and Retry-After read, the bearer token and a device's own credentials sent."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable

import pytest

from simulator.errors import ConfigError
from simulator.messages import Message, Outcome
from simulator.transports.http import HttpTransport
from simulator.transports.http_clients import AiohttpClient, HttpxClient, http_client
from simulator.transports.http_names import ClientName
from tests.transports.test_http_connections import read_request, serving
from tests.transports.test_transport_contract import RecordingSink

CLIENTS: list[ClientName] = ["aiohttp", "httpx"]

Answer = Callable[[int, bytes], bytes | None]


def _message(seq: int) -> Message:
    payload = json.dumps({"device_id": "d0", "seq": seq}).encode()
    return Message(0, 0, 0, "summary", seq, "t", payload, None)


class Target:
    """Reads requests and answers each with ``answer(n, head)``: raw response bytes, or
    None to close the connection unanswered."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.heads: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (head := await read_request(reader)) is not None:
                self.heads.append(head)
                reply = self.answer(len(self.heads), head)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _response(status: int, *headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status} X", *headers, "content-length: 0", "", ""]
    return "\r\n".join(lines).encode()


async def _send(
    url: str, client: ClientName, count: int = 1, timeout: float = 10.0
) -> RecordingSink:
    sink = RecordingSink()
    transport = HttpTransport(sink, url, client=client, timeout=timeout)
    async with transport:
        for seq in range(count):
            transport.send(_message(seq))
        await transport.drain(15.0)
    return sink


def _outcomes(sink: RecordingSink) -> list[tuple[Outcome, str | None]]:
    return [(outcome, error) for _, outcome, error in sink.done]


@pytest.mark.parametrize("client", CLIENTS)
async def test_each_answer_gets_the_same_outcome_from_both_clients(client: ClientName) -> None:
    """2xx acknowledges; 404 and 500 fail as http_404 and http_500 (not retried); a
    Server-Timing header reaches the sink; the token goes out as a bearer header."""
    statuses = {1: 200, 2: 404, 3: 500, 4: 204}
    target = Target(
        lambda n, head: _response(statuses[n], 'server-timing: db;dur=1.5;desc="2 queries"')
    )
    async with serving(target.handle) as url:
        sink = RecordingSink()
        transport = HttpTransport(sink, url, client=client, token="s3cret", max_connections=1)
        async with transport:
            for seq in range(4):
                transport.send(_message(seq))
                await transport.drain(5.0)
    assert _outcomes(sink) == [
        (Outcome.ACKNOWLEDGED, None),
        (Outcome.FAILED, "http_404"),
        (Outcome.FAILED, "http_500"),
        (Outcome.ACKNOWLEDGED, None),
    ]
    assert [header for _, header, _ in sink.timings] == ['db;dur=1.5;desc="2 queries"'] * 4
    assert all(b"authorization: bearer s3cret" in head.lower() for head in target.heads)


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_push_back_with_retry_after_is_sent_again(client: ClientName) -> None:
    """A 503 with Retry-After: 0 is retried on the same client, counted as retried, and the
    message acknowledged on the second try."""
    target = Target(lambda n, head: _response(503, "retry-after: 0") if n == 1 else _response(200))
    async with serving(target.handle) as url:
        sink = await _send(url, client)
    assert len(target.heads) == 2
    assert [reason for _, reason in sink.retried] == ["http_503"]
    assert _outcomes(sink) == [(Outcome.ACKNOWLEDGED, None)]


@pytest.mark.parametrize("client", CLIENTS)
async def test_no_answer_fails_with_the_kind_of_failure(client: ClientName) -> None:
    """A target that closes the connection under the request: "closed" (never sent again:
    a POST is not repeated behind barnstorm's back); one that never answers: "timeout";
    a port nobody listens on: "connect"."""
    closing = Target(lambda n, head: None)
    async with serving(closing.handle) as url:
        assert _outcomes(await _send(url, client)) == [(Outcome.FAILED, "closed")]
    assert len(closing.heads) == 1

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        url = f"http://127.0.0.1:{port}/ingest"
        assert _outcomes(await _send(url, client, timeout=0.5)) == [(Outcome.FAILED, "timeout")]
    finally:
        listener.close()
    # The silent listener's port, now closed: nobody listens there.
    assert _outcomes(await _send(url, client)) == [(Outcome.FAILED, "connect")]


@pytest.mark.parametrize("client", CLIENTS)
async def test_credentials_in_the_url_go_out_as_basic_auth_unless_a_token_is_given(
    client: ClientName,
) -> None:
    """user:password in the ingest URL is sent as Basic auth (never in the request line);
    --token takes its place when both are given."""
    target = Target(lambda n, head: _response(200))
    async with serving(target.handle) as url:
        with_user = url.replace("http://", "http://dev%40farm:p%3Ass@")
        assert _outcomes(await _send(with_user, client)) == [(Outcome.ACKNOWLEDGED, None)]
        sink = RecordingSink()
        async with HttpTransport(sink, with_user, client=client, token="t0k") as transport:
            transport.send(_message(0))
            await transport.drain(5.0)
    basic = "Basic " + base64.b64encode(b"dev@farm:p:ss").decode()
    first, second = (head.decode().lower() for head in target.heads)
    assert f"authorization: {basic.lower()}" in first
    assert "authorization: bearer t0k" in second
    assert all(head.startswith(b"POST /ingest HTTP/1.1") for head in target.heads)


def test_auto_picks_aiohttp_and_httpx_for_http2() -> None:
    """auto is aiohttp for HTTP/1.1 and httpx for HTTP/2; aiohttp with --http2 is refused
    with a line naming the flag."""

    def pick(name: ClientName, http2: bool) -> object:
        return http_client(
            name, "http://x/", {}, http2=http2, verify=False, timeout=1.0, max_connections=4
        )

    assert isinstance(pick("auto", False), AiohttpClient)
    assert isinstance(pick("auto", True), HttpxClient)
    assert isinstance(pick("httpx", False), HttpxClient)
    with pytest.raises(ConfigError, match="--http2"):
        pick("aiohttp", True)
