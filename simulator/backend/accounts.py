"""Who may use the reference backend: dashboard users with hashed passwords, roles and the
farms they own, their expiring session tokens, and the read-back's own token.

Users come from a TOML file (``simulate serve --users FILE``)::

    [users.farmer]
    password = "scrypt$16384$8$1$<salt>$<hash>"   # simulate serve --hash-password
    role = "operator"                             # or "viewer"
    farms = "*"                                   # every farm, or a list of farm ids

    [users.advisor]
    password = "scrypt$..."
    role = "viewer"
    farms = ["farm-00001", "farm-00002"]

A viewer reads the dashboards of its farms; an operator may also acknowledge their alerts.
Without a file, two demo logins exist (``farmer`` and ``advisor``, password ``barnstorm``),
and ``simulate serve`` refuses to listen anywhere but loopback with them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from simulator.tomlfile import Table

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = ("viewer", "operator")

#: scrypt's cost: 16 MiB and ~40 ms a hash, the parameters OWASP names for interactive logins.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 1 << 14, 8, 1
_SCRYPT_MAXMEM = 64 << 20

#: the password of the demo logins, which only a loopback backend offers.
DEMO_PASSWORD = "barnstorm"
#: how long a session token lasts unless told otherwise, in seconds.
DEFAULT_TOKEN_TTL = 3600.0


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``password`` as ``scrypt$N$r$p$salt$hash`` (base64): what a users file holds."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, maxmem=_SCRYPT_MAXMEM
    )
    encoded = (base64.b64encode(part).decode() for part in (salt, digest))
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}$" + "$".join(encoded)


def _parse_hash(text: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = text.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        n, r, p = (int(part) for part in parts[1:4])
        salt, digest = (base64.b64decode(part, validate=True) for part in parts[4:])
    except ValueError:
        return None
    if not (1 < n <= 1 << 20 and n & (n - 1) == 0 and 0 < r <= 32 and 0 < p <= 16 and digest):
        return None
    return n, r, p, salt, digest


def verify_password(password: str, hashed: str) -> bool:
    """Whether ``password`` is the one ``hashed`` (from :func:`hash_password`) was made of."""
    parsed = _parse_hash(hashed)
    if parsed is None:
        return False
    n, r, p, salt, digest = parsed
    candidate = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=len(digest)
    )
    return hmac.compare_digest(candidate, digest)


@dataclass(frozen=True)
class User:
    """A dashboard user: a password hash, a role, and the farms it may see (None: all)."""

    name: str
    password_hash: str = field(repr=False)
    role: Role = "viewer"
    farms: frozenset[str] | None = None

    def owns(self, farm_id: str | None) -> bool:
        return self.farms is None or farm_id in self.farms

    def farm_filter(self) -> list[str] | None:
        """The farms to restrict a query to (None: no restriction), in a stable order."""
        return None if self.farms is None else sorted(self.farms)


def demo_users(farm_ids: Iterable[str]) -> dict[str, User]:
    """The demo logins of a backend started without a users file: ``farmer`` operates every
    farm, ``advisor`` views the first two (so tenancy shows even in the demo)."""
    hashed = hash_password(DEMO_PASSWORD)
    first_two = frozenset(sorted(farm_ids)[:2])
    return {
        "farmer": User("farmer", hashed, "operator", None),
        "advisor": User("advisor", hashed, "viewer", first_two),
    }


def load_users(path: Path) -> dict[str, User]:
    """The users of a TOML file (see the module docstring); errors name the file and key."""
    table = Table.load(path)
    table.check_keys({"users"})
    users_table = table.table("users")
    users: dict[str, User] = {}
    for name in users_table:
        entry = users_table.table(name)
        entry.check_keys({"password", "role", "farms"})
        hashed = entry.string("password")
        if _parse_hash(hashed) is None:
            raise entry.error(
                "password",
                "expected a hash from `simulate serve --hash-password` "
                "(scrypt$N$r$p$salt$hash), never a plain password",
            )
        role = entry.string("role", "viewer")
        if role not in ROLES:
            raise entry.error("role", f'expected one of {", ".join(ROLES)}, got "{role}"')
        farms_value = entry.raw("farms")
        farms = None if farms_value == "*" else frozenset(entry.string_list("farms"))
        users[name] = User(name, hashed, "operator" if role == "operator" else "viewer", farms)
    if not users:
        raise table.error("users", "expected at least one user")
    return users


@dataclass
class Session:
    user: User
    expires: float


@dataclass
class Accounts:
    """The backend's users, their live sessions, and the read-back token."""

    users: dict[str, User]
    token_ttl: float = DEFAULT_TOKEN_TTL
    #: the bearer token /api/readback wants (None: read-back is off).
    readback_token: str | None = field(default=None, repr=False)
    sessions: dict[str, Session] = field(default_factory=dict, repr=False)
    #: the clock session lifetimes are measured on (a test moves its own).
    clock: Callable[[], float] = time.monotonic

    def check(self, name: str, password: str) -> User | None:
        """The user ``name`` if ``password`` is theirs. An unknown name costs a hash as a
        known one does, so timing does not tell names apart. Slow on purpose (scrypt): the
        app runs it in a thread."""
        user = self.users.get(name)
        hashed = user.password_hash if user is not None else _dummy_hash()
        if not verify_password(password, hashed) or user is None:
            return None
        return user

    def open_session(self, user: User) -> str:
        """A new session token for ``user``, valid for ``token_ttl`` seconds."""
        self._forget_expired()
        token = secrets.token_urlsafe(24)
        self.sessions[token] = Session(user, self.clock() + self.token_ttl)
        return token

    def user_of(self, authorization: str) -> User | None:
        """The user whose live session ``authorization`` (``Bearer <token>``) names."""
        if not authorization.startswith("Bearer "):
            return None
        session = self.sessions.get(authorization[7:])
        if session is None:
            return None
        if session.expires <= self.clock():
            del self.sessions[authorization[7:]]
            return None
        return session.user

    def may_read_back(self, authorization: str) -> bool:
        if self.readback_token is None or not authorization.startswith("Bearer "):
            return False
        return hmac.compare_digest(authorization[7:].encode(), self.readback_token.encode())

    def _forget_expired(self) -> None:
        now = self.clock()
        for token in [t for t, s in self.sessions.items() if s.expires <= now]:
            del self.sessions[token]


@functools.cache
def _dummy_hash() -> str:
    return hash_password("not a password anyone has", salt=b"barnstorm-dummy!")
