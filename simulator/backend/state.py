"""What the reference backend's handlers share: the store, the fleet it knows, its user
accounts and session tokens, and the devices' credentials. One object per app, on
``app.state.backend``."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from starlette.requests import Request

from simulator.backend.store import Store
from simulator.fleet.build import Fleet


@dataclass
class Backend:
    store: Store
    fleet: Fleet | None = None
    #: dashboard users: user name -> password.
    accounts: dict[str, str] = field(default_factory=lambda: {"farmer": "barnstorm"})
    #: HTTP Authorization header -> device id; None: devices need no credentials.
    device_credentials: dict[str, str] | None = None
    tokens: set[str] = field(default_factory=set)

    def new_token(self) -> str:
        token = secrets.token_urlsafe(24)
        self.tokens.add(token)
        return token

    def authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        return header.startswith("Bearer ") and header[7:] in self.tokens


def backend_of(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend
