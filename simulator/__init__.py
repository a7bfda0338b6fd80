"""barnstorm: stress-test livestock-monitoring IoT backends with virtual farms.

The public API is small: build a :class:`RunConfig`, run it with :func:`run_blocking`
(or ``await Run(config).execute()``), read the report. The fleet, profiles and
transports are importable for tests and tools.
"""

__version__ = "0.1.0"

from simulator.errors import (
    AuthError,
    BarnstormError,
    ClosedError,
    ConfigError,
    ConnectError,
    SendError,
    TransportError,
)

__all__ = [
    "AuthError",
    "BarnstormError",
    "ClosedError",
    "ConfigError",
    "ConnectError",
    "SendError",
    "TransportError",
    "__version__",
]
