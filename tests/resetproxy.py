"""A TCP proxy in front of an HTTP server that resets chosen requests, as a server does
that closes a keep-alive connection while the client is sending on it."""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
from collections.abc import Iterable
from types import TracebackType

_REQUEST_LINE = re.compile(rb"^GET /\S* HTTP/1\.[01]\r\n")


class ResetProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; the GET requests whose number (1-based,
    in the order they reach the proxy, retries included) is in ``reset`` are answered with
    a TCP reset instead of being forwarded, so the server never sees them. (Only GETs are
    counted: a browser sends a GET again after a reset, and the count must not depend on
    which views the users happened to pick.)"""

    def __init__(self, target: tuple[str, int], reset: Iterable[int]) -> None:
        self.target = target
        self.reset = set(reset)
        self.requests = 0
        self.resets: list[int] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._closed = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ResetProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.target)
        threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
        try:
            while chunk := client.recv(65536):
                if _REQUEST_LINE.match(chunk):
                    with self._lock:
                        self.requests += 1
                        number = self.requests
                    if number in self.reset:
                        self.resets.append(number)
                        # SO_LINGER 0: close() sends RST, not FIN: "connection reset by peer"
                        client.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                        break
                upstream.sendall(chunk)
        except OSError:
            pass
        finally:
            client.close()
            upstream.close()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
