"""What both MQTT clients share: the settings of a target, reconnect backoff, connect
errors translated into barnstorm's own, and the transport base (credentials, TLS).
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from simulator.errors import ConfigError, ConnectError
from simulator.redact import redact_url
from simulator.transports.base import ResultSink, Transport
from simulator.transports.tls import TlsFiles

if TYPE_CHECKING:
    from simulator.fleet.credentials import Credential


#: At speed max, how far apart the rounds are in which barnstorm reads acknowledgements
#: while it only waits for them (``MqttSettings.read_round``): well under how long one of
#: its ticks holds the event loop there (300 to 800 ms for 100 farms), and small beside the
#: seconds a message then waits in a broker that is behind. Such a broker sends each
#: connection's PUBACKs a few at a time, so a longer round reads hardly more sockets: rounds
#: 100 ms apart, not 20, took the reads of the final drain (100 farms at QoS 1) from about
#: 33,000 to 15,000.
READ_ROUND = 0.1


#: bytes of a client-id prefix: with a device id, far inside what brokers accept (MQTT
#: allows 65,535; Mosquitto and most brokers take a few hundred).
MAX_CLIENT_ID_PREFIX = 128
#: the MQTT versions a run can speak: 3.1.1, 5, or 5 falling back to 3.1.1 when refused.
VERSIONS = ("3.1.1", "5", "auto")


@dataclass(frozen=True)
class MqttSettings:
    """Where and how to connect."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False
    qos: int = 1
    version: str = "3.1.1"
    keepalive: int = 60
    connect_timeout: float = 10.0
    #: reconnect backoff after a lost connection: full jitter, uniform in
    #: [0, min(cap, base * 2**attempt)] seconds, so a broker restart does not bring every
    #: device back in the same millisecond.
    reconnect_base: float = 1.0
    reconnect_cap: float = 60.0
    #: local addresses the connections leave from, in turn (one address runs out of
    #: ephemeral ports near 28,000 connections to one broker port).
    source_addresses: tuple[str, ...] = ()
    #: MQTT 5 only: send each topic's name once per connection, then its alias (when the
    #: broker takes aliases: its Topic Alias Maximum).
    topic_alias: bool = False
    #: QoS 1/2 messages in flight per connection (0: 20 at QoS 2, as Mosquitto's default
    #: quota; the protocol's 65,535 at QoS 1); the rest wait on the device.
    max_inflight: int = 0
    #: what each client id starts with (then the device or gateway id); None: one of this
    #: run's own (``run_prefix``), so two runs of one fleet on one broker never take each
    #: other's connections. A fixed prefix keeps ids stable across runs, on purpose.
    client_id_prefix: str | None = None
    #: seconds between the rounds in which barnstorm reads its acknowledgements while it
    #: has nothing to do but wait for them (at --speed max, with the broker behind); 0
    #: reads each as it comes. See ``LeanMqttTransport._wait_round``.
    read_round: float = 0.0

    def __post_init__(self) -> None:
        if self.version not in VERSIONS:
            raise ConfigError(
                "--mqtt-version", f'expected one of {", ".join(VERSIONS)}, got "{self.version}"'
            )
        if self.topic_alias and self.version == "3.1.1":
            raise ConfigError("--topic-alias", "topic aliases are MQTT 5's: give --mqtt-version 5")
        prefix = self.client_id_prefix
        if prefix is not None and (not prefix or "\x00" in prefix):
            raise ConfigError("--client-id-prefix", "expected a non-empty text without NUL")
        if prefix is not None and len(prefix.encode()) > MAX_CLIENT_ID_PREFIX:
            raise ConfigError(
                "--client-id-prefix",
                f"{len(prefix.encode()):,} bytes is too long (at most {MAX_CLIENT_ID_PREFIX}: "
                "a client id is the prefix and the device id, and brokers refuse long ones)",
            )
        if self.password and not self.username and self.version != "5":
            # MQTT-3.1.2-22: no password without a user name (MQTT 5 allows it; auto may
            # fall back to 3.1.1).
            raise ConfigError(
                "--password", "MQTT 3.1.1 sends a password only with a user name: give --username"
            )

    @property
    def url(self) -> str:
        """The broker's address without credentials, for messages and reports."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MqttSettings:
        """Parse ``mqtt://[user:pass@]host[:port]`` or ``mqtts://...``."""
        try:
            parts = urlsplit(url)
            hostname = parts.hostname
        except ValueError as exc:
            raise ConfigError("--mqtt", f'"{redact_url(url)}" is not a URL ({exc})') from None
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not hostname:
            raise ConfigError(
                "--mqtt",
                f'expected mqtt://host:port or mqtts://host:port, got "{redact_url(url)}"',
            )
        tls = parts.scheme in ("mqtts", "ssl")
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise ConfigError("--mqtt", f'"{redact_url(url)}" has an invalid port') from None
        # Credentials in the URL count unless given separately.
        if parts.username and options.get("username") is None:
            options["username"] = unquote(parts.username)
        if parts.password and options.get("password") is None:
            options["password"] = unquote(parts.password)
        return cls(host=hostname, port=port, tls=tls, **options)

    def ssl_context(
        self, cert_file: Path | None = None, key_file: Path | None = None
    ) -> ssl.SSLContext | bool:
        """The TLS context: the run's client certificate, or a device's own."""
        if not self.tls:
            return False
        files = TlsFiles(self.ca_file, self.cert_file, self.key_file, self.insecure)
        return files.context(cert_file, key_file)


def run_prefix(run_id: str) -> str:
    """The client-id prefix of a run given none: its own, so that runs apart stay apart."""
    return f"barnstorm-{run_id[:8]}-"


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0.0, min(cap, base * 2.0 ** min(attempt, 32)))


class ClosedBeforeConnack(ConnectionResetError):
    """The broker closed the connection before it answered CONNECT."""

    def __init__(self, cause: Exception | None) -> None:
        detail = f": {cause}" if cause else ""
        super().__init__(f"the broker closed the connection before answering CONNECT{detail}")


class MqttBase(Transport):
    """What both MQTT transports share: settings, client ids, credentials and TLS."""

    name = "mqtt"

    def __init__(
        self,
        sink: ResultSink,
        settings: MqttSettings,
        client_ids: list[str],
        credentials: dict[int, Credential] | None = None,
    ) -> None:
        super().__init__(sink)
        self.settings = settings
        self.client_ids = client_ids
        self.credentials = credentials or {}
        self._ssl: ssl.SSLContext | bool = False
        self._device_ssl: dict[tuple[Path, Path | None], ssl.SSLContext | bool] = {}

    async def open(self) -> None:
        self._ssl = self.settings.ssl_context()

    def _tls_for(self, credential: Credential | None) -> ssl.SSLContext | bool:
        """The run's TLS context, or one per client certificate (shared by its devices)."""
        if credential is None or credential.cert_file is None or not self.settings.tls:
            return self._ssl
        key = (credential.cert_file, credential.key_file)
        if key not in self._device_ssl:
            self._device_ssl[key] = self.settings.ssl_context(*key)
        return self._device_ssl[key]


@contextlib.contextmanager
def translated_errors(settings: MqttSettings) -> Iterator[None]:
    """Socket, TLS and timeout failures of a connect as barnstorm's one-line errors."""
    try:
        yield
    except ssl.SSLError as exc:
        reason = str(exc.reason or exc)
        if reason == "CERTIFICATE_VERIFY_FAILED":
            reason += " (the broker's certificate is not signed by a CA we trust: give --ca-file)"
        raise ConnectError(f"TLS handshake with {settings.url} failed: {reason}") from None
    except TimeoutError:
        raise ConnectError(
            f"{settings.url} did not answer within {settings.connect_timeout:g}s"
            + _certificate_hint(settings)
        ) from None
    except ClosedBeforeConnack as exc:
        raise ConnectError(f"{exc} ({settings.url}){_certificate_hint(settings)}") from None
    except socket.gaierror as exc:
        # getaddrinfo's own codes (-2 ...) are no errno: os.strerror would say "unknown".
        raise ConnectError(f"cannot resolve {settings.host}: {exc.strerror or exc}") from None
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__
        raise ConnectError(f"cannot connect to {settings.url}: {reason.lower()}") from None


def _certificate_hint(settings: MqttSettings) -> str:
    if settings.tls and settings.cert_file is None:
        return " (does it require a client certificate? give --cert-file and --key-file)"
    return ""
