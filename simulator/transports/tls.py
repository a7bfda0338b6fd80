"""TLS client contexts for the MQTT and HTTP transports: verification on by default."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from simulator.errors import ConfigError


@dataclass(frozen=True)
class TlsFiles:
    """What the user gave for TLS: a CA bundle, a client certificate and key, or neither."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False

    def context(
        self, cert_file: Path | None = None, key_file: Path | None = None
    ) -> ssl.SSLContext:
        """A client context trusting the system's CAs (or ``ca_file``), presenting the
        client certificate given here (or ``cert_file``/``key_file``, a device's own)."""
        cert_file, key_file = (
            (cert_file, key_file) if cert_file else (self.cert_file, self.key_file)
        )
        try:
            context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
            if cert_file:
                context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                "--ca-file/--cert-file/--key-file", f"cannot load TLS files: {exc}"
            ) from None
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context
