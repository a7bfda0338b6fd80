"""Per-device credentials in bulk, from a CSV file (``--credentials FILE``).

The header names the columns: ``device_id`` and either ``username,password`` (MQTT login,
HTTP basic auth) or ``token`` (HTTP bearer token). Devices missing from the file use the
run's common credentials, if any. Values are secrets: they are never printed or reported.
"""

from __future__ import annotations

import base64
import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError


@dataclass(frozen=True)
class Credential:
    username: str | None = None
    password: str | None = None
    token: str | None = None

    def __repr__(self) -> str:  # secrets stay out of logs and tracebacks
        return f"Credential(username={self.username!r}, password=***, token=***)"

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
    with handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        if "device_id" not in columns or not (
            {"username", "password"} <= columns or "token" in columns
        ):
            raise ConfigError(
                f"{path}: line 1", "expected the columns device_id and username,password or token"
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
            if token is None and username is None:
                raise ConfigError(f"{path}: line {line}", "needs a username or a token")
            credentials[index[device_id]] = Credential(username, row.get("password") or None, token)
    return credentials
