"""The HTTP clients under the HTTP ingest transport, one small contract for both:
``post`` sends a body and returns the status and the two headers barnstorm reads, or the
error kind of a request that got no answer ("timeout", "connect", "dns", "tls", "closed").

- **aiohttp** (the default): HTTP/1.1 with a C parser; about 3.5x the requests per
  CPU-second of httpx on the same requests (``python -m benchmarks http``).
- **httpx**: HTTP/2 (``--http2``), or on request (``--http-client httpx``).

Both close idle connections after ``KEEPALIVE_EXPIRY`` seconds, before the shortest idle
timeout common servers use (gunicorn's 2 s; uvicorn, Node and Apache close after 5 s, the
same as httpx's own default): a request sent on a connection the server is closing at that
very instant fails, and that failure would be the client's, not the target's. Neither
sends a POST again by itself: a connection that breaks under a request fails it.

Requests beyond the connection limit wait on a semaphore in front of the client, cheaply,
and not inside the client's pool, where thousands of waiters cost CPU and count against
the request's timeout.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import dataclass

import aiohttp
import httpx

from simulator.errors import ConfigError
from simulator.transports.http_names import ClientName

KEEPALIVE_EXPIRY = 1.5
_POOL = 4  # connections per httpx pool (measured: 4 beat 1, 2, 10 and 25)


@dataclass(frozen=True, slots=True)
class Answer:
    """What barnstorm reads of a response, or ``error``: why there was none."""

    status: int
    server_timing: str | None = None
    retry_after: str | None = None
    error: str | None = None


def failed(kind: str) -> Answer:
    """The answer of a request that got none."""
    return Answer(0, error=kind)


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
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect"
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientError, OSError)):
        return "closed"  # the connection was up: the target closed or reset it
    return "connect"


def env_proxy(url: str) -> str | None:
    """The proxy HTTP(S)_PROXY names for ``url``, unless NO_PROXY leaves it out."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


class HttpClient(ABC):
    """POSTs bodies to one URL over pooled connections."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        *,
        verify: ssl.SSLContext | bool,
        timeout: float,
        max_connections: int,
    ) -> None:
        self.url = url
        self.headers = headers
        # One TLS context for every pool (each would otherwise load the CA bundle again).
        self.verify: ssl.SSLContext | bool = (
            ssl.create_default_context() if verify is True else verify
        )
        self.timeout = timeout
        self.max_connections = max_connections

    @abstractmethod
    async def open(self) -> None:
        """Make the pools (inside the running event loop)."""

    @abstractmethod
    async def post(self, key: int, body: bytes, headers: dict[str, str] | None) -> Answer:
        """POST ``body``; ``key`` (a connection owner) picks the pool where there are
        several."""

    @abstractmethod
    async def close(self) -> None:
        """Close every connection."""


class AiohttpClient(HttpClient):
    """aiohttp: one session, one pool of ``max_connections``."""

    _session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._slots = asyncio.Semaphore(self.max_connections)
        self._session = aiohttp.ClientSession(
            headers=self.headers,
            connector=aiohttp.TCPConnector(
                limit=self.max_connections,
                limit_per_host=0,
                keepalive_timeout=KEEPALIVE_EXPIRY,
                ssl=self.verify,
            ),
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=self.timeout,
                sock_connect=self.timeout,
                sock_read=self.timeout,
            ),
            # As httpx does by default: a proxy from HTTP(S)_PROXY and NO_PROXY, looked up
            # once (aiohttp's trust_env looks it up, and netrc, in a thread per request).
            proxy=env_proxy(self.url),
            auto_decompress=False,
        )

    async def post(self, key: int, body: bytes, headers: dict[str, str] | None) -> Answer:
        assert self._session is not None, "post() before open()"
        try:
            async with (
                self._slots,
                self._session.post(self.url, data=body, headers=headers) as response,
            ):
                await response.read()  # the connection goes back to the pool only when read
                found = response.headers
                return Answer(response.status, found.get("server-timing"), found.get("retry-after"))
        except TimeoutError:  # aiohttp's timeouts subclass it
            return failed("timeout")
        except (aiohttp.ClientError, OSError) as exc:
            return failed(network_error_kind(exc))

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class HttpxClient(HttpClient):
    """httpx (HTTP/1.1 or HTTP/2): small pools, each connection owner always on the same.

    httpcore looks at every connection of its pool for every request, so one pool of 100
    costs more CPU per request than the request itself."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        *,
        verify: ssl.SSLContext | bool,
        timeout: float,
        max_connections: int,
        http2: bool,
    ) -> None:
        super().__init__(
            url, headers, verify=verify, timeout=timeout, max_connections=max_connections
        )
        self.http2 = http2
        self._clients: list[httpx.AsyncClient] = []
        self._slots: list[asyncio.Semaphore] = []

    async def open(self) -> None:
        pools = max(1, -(-self.max_connections // _POOL))
        size = -(-self.max_connections // pools)
        for _ in range(pools):
            self._clients.append(
                httpx.AsyncClient(
                    http2=self.http2,
                    headers=self.headers,
                    verify=self.verify,
                    timeout=self.timeout,
                    limits=httpx.Limits(
                        max_connections=size,
                        max_keepalive_connections=size,
                        keepalive_expiry=KEEPALIVE_EXPIRY,
                    ),
                )
            )
            self._slots.append(asyncio.Semaphore(size))

    async def post(self, key: int, body: bytes, headers: dict[str, str] | None) -> Answer:
        assert self._clients, "post() before open()"
        which = key % len(self._clients)
        try:
            async with self._slots[which]:
                response = await self._clients[which].post(self.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return failed("timeout")
        except (httpx.TransportError, OSError) as exc:
            # httpx maps most network errors to TransportError, but a TLS alert on a read
            # (a client certificate refused under TLS 1.3) can come through raw.
            return failed(network_error_kind(exc))
        found = response.headers
        return Answer(response.status_code, found.get("server-timing"), found.get("retry-after"))

    async def close(self) -> None:
        clients, self._clients = self._clients, []
        for client in clients:
            await client.aclose()


def http_client(
    name: ClientName,
    url: str,
    headers: dict[str, str],
    *,
    http2: bool,
    verify: ssl.SSLContext | bool,
    timeout: float,
    max_connections: int,
) -> HttpClient:
    """The client ``--http-client`` names ("auto": aiohttp, or httpx for HTTP/2)."""
    if name == "aiohttp" and http2:
        raise ConfigError(
            "--http2", "aiohttp speaks HTTP/1.1 only: use --http-client httpx (or auto)"
        )
    if name == "httpx" or (name == "auto" and http2):
        return HttpxClient(
            url,
            headers,
            verify=verify,
            timeout=timeout,
            max_connections=max_connections,
            http2=http2,
        )
    return AiohttpClient(
        url, headers, verify=verify, timeout=timeout, max_connections=max_connections
    )
