"""What the reference backend's handlers share: the store, the fleet it knows, its accounts
(users, sessions, the read-back token), and the devices' credentials. One object per app,
on ``app.state.backend``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from starlette.requests import Request

from simulator.backend.accounts import Accounts, User
from simulator.backend.store import Store
from simulator.fleet.build import Fleet


@dataclass
class Backend:
    store: Store
    accounts: Accounts
    fleet: Fleet | None = None
    #: HTTP Authorization header -> device id; None: devices need no credentials.
    device_credentials: dict[str, str] | None = None

    @cached_property
    def room_farms(self) -> dict[str, str]:
        """Each room of the known fleet: the farm it belongs to."""
        if self.fleet is None:
            return {}
        farm_ids = [farm.farm_id for farm in self.fleet.farms]
        rooms = self.fleet.rooms
        return {room: farm_ids[int(rooms.farm[i])] for i, room in enumerate(rooms.ids)}

    def user(self, request: Request) -> User | None:
        """The logged-in user a request's bearer token names, if its session is live."""
        return self.accounts.user_of(request.headers.get("authorization", ""))


def backend_of(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend
