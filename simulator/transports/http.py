"""The HTTP ingest transport: the same payloads, POSTed (over aiohttp, or httpx for HTTP/2:
see ``http_clients``).

One request per message, or a JSON array per site gateway with ``batch`` > 1 (flushed when
full or a second old). Requests run concurrently in the transport's own task group, over
pooled connections, so a slow target delays acknowledgements, never the
schedule. Status codes are counted: 2xx acknowledges, anything else fails the message with
``http_<code>``; timeouts, refused connections and TLS failures fail it with ``timeout``,
``connect`` or ``tls``, and a connection the target closed or reset during a request with
``closed``.

Idle connections are closed before a server's idle timer can close them under a request.

A 429 or 503 with ``Retry-After`` (seconds or an HTTP date) is honoured as a device SDK
would: the request is sent again after that wait (at most ``MAX_RETRY_AFTER`` seconds,
``MAX_RETRIES`` times), each retry counted as ``retried``, and the message's latency
includes the wait. Without the header, or past those bounds, the message fails.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import ssl
import time
import urllib.parse
from typing import TYPE_CHECKING

from simulator.errors import ConfigError
from simulator.messages import Message, Outcome
from simulator.traces.context import TraceContext
from simulator.transports.base import ResultSink, Transport
from simulator.transports.http_names import ClientName

if TYPE_CHECKING:
    from simulator.fleet.credentials import Credential
    from simulator.transports.http_clients import HttpClient

_BATCH_AGE = 1.0  # seconds a partial batch may wait
MAX_RETRIES = 3
MAX_RETRY_AFTER = 60.0
# The HTTP client libraries (http_clients) are imported by open(): only a run that POSTs
# pays for importing them.


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


def _url_credentials(url: str) -> tuple[str, str | None]:
    """``url`` without its user:password, and that as a Basic ``Authorization`` value (which
    --token, and a device's own credentials, take precedence over)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.netloc.rpartition("@")[2]
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), basic


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
        client: ClientName = "auto",
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
        self._client_name: ClientName = client
        self._client: HttpClient | None = None
        self._group: asyncio.TaskGroup | None = None
        self._batches: dict[int, list[Message]] = {}
        self._batch_started: dict[int, float] = {}
        self._pending = 0
        self.verify = verify
        self._closing = asyncio.Event()

    async def open(self) -> None:
        from simulator.transports.http_clients import http_client

        headers = {"content-type": "application/json"}
        self.url, basic = _url_credentials(self.url)
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        elif basic:
            headers["authorization"] = basic
        self._client = http_client(
            self._client_name,
            self.url,
            headers,
            http2=self.http2,
            verify=self.verify,
            timeout=self.timeout,
            max_connections=self.max_connections,
        )
        await self._client.open()
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
        client = self._client
        assert client is not None
        if len(messages) == 1 and self.batch <= 1:
            body = messages[0].payload
        else:
            body = b"[" + b",".join(m.payload for m in messages) + b"]"
        error: str | None = None
        headers = self._headers(messages)
        started = time.time_ns()
        status: int | None = None
        for attempt in range(MAX_RETRIES + 1):
            answer = await client.post(messages[0].connection, body, headers)
            if answer.error is not None:
                error = answer.error
                break
            status = answer.status
            timing = answer.server_timing
            if timing:
                code = messages[0].type_code
                same = all(m.type_code == code for m in messages)
                self.sink.server_timing(code if same else -1, timing, len(body))
            if 200 <= status < 300:
                error = None
                break
            error = f"http_{status}"
            wait = retry_after(answer.retry_after)
            if status not in (429, 503) or wait is None or wait > MAX_RETRY_AFTER:
                break
            if attempt == MAX_RETRIES:
                break
            for message in messages:
                self.sink.message_retried(message, error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), wait)
                break  # the run is stopping: the message keeps its last outcome
        exporter = self.trace.exporter if self.trace is not None else None
        if exporter is not None and headers is not None and "traceparent" in headers:
            name = self._flow_name(messages)
            exporter.add(
                headers["traceparent"],
                name,
                started,
                time.time_ns(),
                method="POST",
                url=self.url,
                status=status,
                error=error,
            )
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
            headers.update(self.trace.headers("ingest", self._flow_name(messages)))
        return headers or None

    def _flow_name(self, messages: list[Message]) -> str:
        """The request's name in its trace: its device type's ingest, or a mixed batch's."""
        code = messages[0].type_code
        same = all(m.type_code == code for m in messages)
        return self._flows[code] if same and code < len(self._flows) else "ingest batch"

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
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        await super().close()
