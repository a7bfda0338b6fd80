"""The HTTP ingest transport (httpx): the same payloads, POSTed.

One request per message, or a JSON array per site gateway with ``batch`` > 1 (flushed when
full or a second old). Requests run concurrently in the transport's own task group, over
a pooled client (HTTP/1.1 or HTTP/2), so a slow target delays acknowledgements, never the
schedule. Status codes are counted: 2xx acknowledges, anything else fails the message with
``http_<code>``; timeouts, refused connections and TLS failures fail it with ``timeout``,
``connect`` or ``tls``, and a connection the target closed or reset during a request with
``closed``.

Idle connections are closed after ``KEEPALIVE_EXPIRY`` seconds, before the shortest idle
timeout common servers use (gunicorn's 2 s; uvicorn, Node and Apache close after 5 s, the
same as httpx's own default): a request sent on a connection the server is closing at that
very instant fails, and that failure would be the client's, not the target's.

A 429 or 503 with ``Retry-After`` (seconds or an HTTP date) is honoured as a device SDK
would: the request is sent again after that wait (at most ``MAX_RETRY_AFTER`` seconds,
``MAX_RETRIES`` times), each retry counted as ``retried``, and the message's latency
includes the wait. Without the header, or past those bounds, the message fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import socket
import ssl
import time
from typing import TYPE_CHECKING

import httpx

from simulator.errors import ConfigError
from simulator.messages import Message, Outcome
from simulator.trace import TraceContext
from simulator.transports.base import ResultSink, Transport

if TYPE_CHECKING:
    from simulator.fleet.credentials import Credential

_BATCH_AGE = 1.0  # seconds a partial batch may wait
MAX_RETRIES = 3
_POOL = 4  # connections per httpx pool (measured: 4 beat 1, 2, 10 and 25)
MAX_RETRY_AFTER = 60.0
KEEPALIVE_EXPIRY = 1.5


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delay-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def network_error_kind(exc: BaseException) -> str:
    """The error kind of a failed request: "tls" (an untrusted certificate, a refused client
    certificate), "dns" (a host name that does not resolve), "closed" (a connection that
    was up broke during the request: the target closed or reset it) or "connect"."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, ssl.SSLError) or "CERTIFICATE" in str(seen):
            return "tls"
        if isinstance(seen, socket.gaierror):
            return "dns"
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)):
        return "closed"
    return "connect"


class HttpTransport(Transport):
    """POSTs messages to an ingest URL."""

    name = "http"

    def __init__(
        self,
        sink: ResultSink,
        url: str,
        *,
        batch: int = 1,
        http2: bool = False,
        token: str | None = None,
        timeout: float = 10.0,
        max_connections: int = 100,
        credentials: dict[int, Credential] | None = None,
        trace: TraceContext | None = None,
        type_names: tuple[str, ...] = (),
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        super().__init__(sink)
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                "--http", f'expected http://host:port/path or https://..., got "{url}"'
            )
        self.url = url
        self.batch = batch
        self.http2 = http2
        self.token = token
        self.timeout = timeout
        self.max_connections = max_connections
        #: per connection owner (a device or its gateway): its own Authorization header.
        self._auth = {owner: c.http_header() for owner, c in (credentials or {}).items()}
        self.trace = trace
        #: the flow named in each request's trace context, per device type code.
        self._flows = [f"ingest {name}" for name in type_names]
        self._clients: list[httpx.AsyncClient] = []
        self._slots: list[asyncio.Semaphore] = []
        self._group: asyncio.TaskGroup | None = None
        self._batches: dict[int, list[Message]] = {}
        self._batch_started: dict[int, float] = {}
        self._pending = 0
        self.verify = verify
        self._closing = asyncio.Event()

    async def open(self) -> None:
        headers = {"content-type": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        # httpcore looks at every connection of its pool for every request, so one pool of
        # 100 costs more CPU per request than the request itself: the connections are
        # split over small pools, each device (or gateway) always on the same.
        pools = max(1, -(-self.max_connections // _POOL))
        size = -(-self.max_connections // pools)
        # One TLS context for every pool (each would otherwise load the CA bundle again).
        verify = self.verify
        if verify is True:
            verify = ssl.create_default_context()
        for _ in range(pools):
            self._clients.append(
                httpx.AsyncClient(
                    http2=self.http2,
                    headers=headers,
                    verify=verify,
                    timeout=self.timeout,
                    limits=httpx.Limits(
                        max_connections=size,
                        max_keepalive_connections=size,
                        keepalive_expiry=KEEPALIVE_EXPIRY,
                    ),
                )
            )
            # Requests beyond a pool wait here, cheaply, rather than in httpx's pool, where
            # thousands of waiters cost CPU and count against the request timeout.
            self._slots.append(asyncio.Semaphore(size))
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()

    def send(self, message: Message) -> None:
        self.check_open()
        self.sink.message_sent(message)
        self._pending += 1
        if self.batch <= 1:
            self._post([message])
            return
        owner = message.connection
        batch = self._batches.setdefault(owner, [])
        if not batch:
            self._batch_started[owner] = time.monotonic()
        batch.append(message)
        if len(batch) >= self.batch:
            self._post(self._batches.pop(owner))
        self._flush_old()

    def _flush_old(self, everything: bool = False) -> None:
        now = time.monotonic()
        for owner in list(self._batches):
            if everything or now - self._batch_started[owner] >= _BATCH_AGE:
                self._post(self._batches.pop(owner))

    def _post(self, messages: list[Message]) -> None:
        assert self._group is not None
        self._group.create_task(self._request(messages), name="barnstorm-http-post")

    async def _request(self, messages: list[Message]) -> None:
        assert self._clients
        which = messages[0].connection % len(self._clients)
        client, slots = self._clients[which], self._slots[which]
        if len(messages) == 1 and self.batch <= 1:
            body = messages[0].payload
        else:
            body = b"[" + b",".join(m.payload for m in messages) + b"]"
        error: str | None = None
        headers = self._headers(messages)
        for attempt in range(MAX_RETRIES + 1):
            try:
                async with slots:
                    response = await client.post(self.url, content=body, headers=headers)
            except httpx.TimeoutException:
                error = "timeout"
                break
            except (httpx.TransportError, OSError) as exc:
                # httpx maps most network errors to TransportError, but a TLS alert on a
                # read (a client certificate refused under TLS 1.3) can come through raw.
                error = network_error_kind(exc)
                break
            status = response.status_code
            timing = response.headers.get("server-timing")
            if timing:
                code = messages[0].type_code
                same = all(m.type_code == code for m in messages)
                self.sink.server_timing(code if same else -1, timing, len(body))
            if 200 <= status < 300:
                error = None
                break
            error = f"http_{status}"
            wait = retry_after(response.headers.get("retry-after"))
            if status not in (429, 503) or wait is None or wait > MAX_RETRY_AFTER:
                break
            if attempt == MAX_RETRIES:
                break
            for message in messages:
                self.sink.message_retried(message, error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), wait)
                break  # the run is stopping: the message keeps its last outcome
        for message in messages:
            self._pending -= 1
            if error is None:
                self.sink.message_done(message, Outcome.ACKNOWLEDGED)
            else:
                self.sink.message_done(message, Outcome.FAILED, error)

    def _headers(self, messages: list[Message]) -> dict[str, str] | None:
        headers: dict[str, str] = {}
        auth = self._auth.get(messages[0].connection)
        if auth:
            headers["authorization"] = auth
        if self.trace is not None:
            code = messages[0].type_code
            same = all(m.type_code == code for m in messages)
            flow = self._flows[code] if same and code < len(self._flows) else "ingest batch"
            headers.update(self.trace.headers(flow))
        return headers or None

    @property
    def in_flight(self) -> int:
        return self._pending

    async def drain(self, timeout: float) -> None:
        self._flush_old(everything=True)
        await super().drain(timeout)

    async def close(self) -> None:
        self._closing.set()
        if self._group is not None:
            self._flush_old(everything=True)
            group, self._group = self._group, None
            await group.__aexit__(None, None, None)
        clients, self._clients = self._clients, []
        for client in clients:
            await client.aclose()
        await super().close()
