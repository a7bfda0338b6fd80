"""The parts of GitLab's REST API the nightly pipeline uses, on 127.0.0.1: the generic
package registry (list, upload, download, as GitLab answers them) and a job's artifact
files, all behind the job token."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

_PACKAGES = re.compile(r"^/api/v4/projects/(\d+)/packages$")
_FILE = re.compile(r"^/api/v4/projects/(\d+)/packages/generic/([^/]+)/([^/]+)/([^/]+)$")
_ARTIFACT = re.compile(r"^/api/v4/projects/(\d+)/jobs/(\d+)/artifacts/(.+)$")


class FakeGitLab:
    """A project ``project`` whose job token is ``token``: ``files`` holds the package
    registry's uploads as GitLab keeps them (every upload, the newest served), ``artifacts``
    a job ID's artifact folder, ``requests`` what was asked, for the test to read."""

    def __init__(self, project: int, token: str) -> None:
        self.project = project
        self.token = token
        self.files: dict[tuple[str, str, str], list[bytes]] = {}
        self.artifacts: dict[int, Path] = {}
        self.requests: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.answer(self, "GET")

            def do_PUT(self) -> None:
                fake.answer(self, "PUT")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/api/v4"

    def __enter__(self) -> FakeGitLab:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def newest(self, name: str, version: str, file: str) -> bytes | None:
        uploads = self.files.get((name, version, file))
        return uploads[-1] if uploads else None

    def answer(self, request: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(request.path)
        self.requests.append(f"{method} {url.path}")
        if request.headers.get("JOB-TOKEN") != self.token:
            return self._send(request, 401, {"message": "401 Unauthorized"})
        if method == "GET" and (match := _PACKAGES.match(url.path)):
            wanted = parse_qs(url.query).get("package_name", [""])[0]
            names = sorted({name for name, _, _ in self.files if wanted in name})
            if int(match.group(1)) != self.project:
                return self._send(request, 404, {"message": "404 Project Not Found"})
            listing = [
                {"id": i + 1, "name": name, "package_type": "generic"}
                for i, name in enumerate(names)
            ]
            return self._send(request, 200, listing)
        if match := _FILE.match(url.path):
            key = (match.group(2), match.group(3), match.group(4))
            if method == "PUT":
                length = int(request.headers.get("Content-Length") or 0)
                self.files.setdefault(key, []).append(request.rfile.read(length))
                return self._send(request, 201, {"message": "201 Created"})
            body = self.newest(*key)
            if body is None:
                return self._send(request, 404, {"message": "404 Package Not Found"})
            return self._send_bytes(request, 200, body)
        if method == "GET" and (match := _ARTIFACT.match(url.path)):
            folder = self.artifacts.get(int(match.group(2)))
            path = folder / match.group(3) if folder else None
            if path is None or not path.is_file():
                return self._send(request, 404, {"message": "404 Not found"})
            return self._send_bytes(request, 200, path.read_bytes())
        return self._send(request, 404, {"message": "404 Not Found"})

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, data: Any) -> None:
        FakeGitLab._send_bytes(request, status, json.dumps(data).encode())

    @staticmethod
    def _send_bytes(request: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        request.send_response(status)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)
