"""barnstorm's own error types.

Library errors (aiomqtt, amqtt, httpx, OS sockets, TOML parsing) are translated into these at the
boundary where they happen, so callers and metrics see one vocabulary::

    BarnstormError                 root; its message is one line a user can act on
    ├── ConfigError                a file, key or flag holds something unexpected
    ├── TransportError             talking to a target failed
    │   ├── ConnectError           the target cannot be reached (refused, DNS, timeout, TLS)
    │   ├── AuthError              the target refused the credentials
    │   └── SendError              a message could not be handed over
    └── ClosedError                a closed resource (transport, run) was used again
"""

from __future__ import annotations


class BarnstormError(Exception):
    """Root of every error barnstorm raises on purpose."""

    #: short, stable name used as a metrics label (``errors.connect`` and so on).
    kind = "error"


class ConfigError(BarnstormError):
    """A configuration file, key or command-line flag holds an unexpected value.

    ``where`` names the place (``farms/eu.toml: sites.rooms`` or ``--speed``), ``problem``
    says what was found and what was expected.
    """

    kind = "config"

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str]]:
        # Raised in a worker process, it must cross back to the parent intact.
        return (type(self), (self.where, self.problem))


class TransportError(BarnstormError):
    """Talking to the target failed."""

    kind = "transport"


class ConnectError(TransportError):
    """The target could not be reached."""

    kind = "connect"


class AuthError(TransportError):
    """The target refused the credentials (bad user name or password, not authorised)."""

    kind = "auth"


class SendError(TransportError):
    """A message could not be handed to the target."""

    kind = "send"


class ClosedError(BarnstormError):
    """A closed resource was used again."""

    kind = "closed"
