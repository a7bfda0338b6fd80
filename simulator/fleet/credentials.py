"""Per-device credentials in bulk, from a CSV file (``--credentials FILE``).

The header names the columns: ``device_id`` and any of ``username,password`` (MQTT login,
HTTP basic auth), ``token`` (HTTP bearer token) and ``cert_file,key_file`` (a client
certificate per device, for mutual TLS to the broker; paths relative to the CSV's
folder). Devices missing from the file use the run's common credentials, if any. Values
are secrets: they are never printed or reported.
"""

from __future__ import annotations

import base64
import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from simulator.errors import ConfigError
from simulator.redact import register


@dataclass(frozen=True)
class Credential:
    username: str | None = None
    password: str | None = None
    token: str | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def __repr__(self) -> str:  # secrets stay out of logs and tracebacks
        return (
            f"Credential(username={self.username!r}, password=***, token=***, "
            f"cert_file={self.cert_file!s})"
        )

    def http_header(self) -> str:
        """The ``Authorization`` header value for HTTP."""
        if self.token is not None:
            return f"Bearer {self.token}"
        raw = f"{self.username or ''}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def load_credentials(path: Path, device_ids: Sequence[str]) -> dict[int, Credential]:
    """Credentials by fleet device index; errors name the file, the line and the column."""
    index = {device_id: i for i, device_id in enumerate(device_ids)}
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ConfigError("--credentials", f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        with handle:
            return _read_credentials(path, csv.DictReader(handle), index)
    except UnicodeDecodeError as exc:
        raise ConfigError(
            str(path), f"not UTF-8 text (byte {exc.start}): expected a CSV file"
        ) from None
    except csv.Error as exc:
        raise ConfigError(str(path), f"not a CSV file ({exc})") from None


def _read_credentials(
    path: Path, reader: csv.DictReader[str], index: dict[str, int]
) -> dict[int, Credential]:
    columns = set(reader.fieldnames or ())
    if "device_id" not in columns or not (
        {"username", "password"} <= columns
        or "token" in columns
        or {"cert_file", "key_file"} <= columns
    ):
        raise ConfigError(
            f"{path}: line 1",
            "expected the columns device_id and username,password or token or cert_file,key_file",
        )
    credentials: dict[int, Credential] = {}
    for line, row in enumerate(reader, start=2):
        device_id = (row.get("device_id") or "").strip()
        if device_id not in index:
            raise ConfigError(
                f"{path}: line {line}: device_id",
                f'"{device_id}" is not a device of this fleet',
            )
        token = (row.get("token") or "").strip() or None
        username = (row.get("username") or "").strip() or None
        files = []
        for column in ("cert_file", "key_file"):
            name = (row.get(column) or "").strip()
            file = (path.parent / name) if name else None
            if file is not None and not file.is_file():
                raise ConfigError(f"{path}: line {line}: {column}", f"{file} is not a file")
            files.append(file)
        if token is None and username is None and files[0] is None:
            raise ConfigError(f"{path}: line {line}", "needs a username, a token or a cert_file")
        password = row.get("password") or None
        register(password, token)
        credentials[index[device_id]] = Credential(username, password, token, files[0], files[1])
    return credentials
