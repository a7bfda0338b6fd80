"""Secrets stay out of every output.

barnstorm is handed secrets through many doors: URLs (``mqtt://user:pass@``,
``https://user:pass@host/ingest?token=...``), flags (``--password``, ``--token``,
``--readback-token``), their environment variables and config-file keys, and the per-device
credentials CSV. Two layers keep them out of what it writes:

- at the source, values that carry a secret are shown redacted (:func:`redact_url`), and
  configurations list ``***`` instead of them;
- at the door out, every secret a process was given is :func:`register`-ed, and the
  standard streams and every report writer pass text through :func:`scrub`, which masks
  any registered secret and any password in a URL. A secret that an error message of a
  library repeats is masked there too.

The registry is the one piece of process-wide state in barnstorm, on purpose: a secret must
be masked on every path out, including the ones nobody thought of.
"""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlencode, urlsplit

from simulator.errors import ConfigError

MASK = "***"
#: shorter values are not masked inside text (a 2-letter password would mask every
#: occurrence of those letters); they are still never written as values.
MIN_SECRET = 4
#: query parameters whose values are secrets wherever they appear.
SECRET_PARAMS = frozenset(
    {"token", "access_token", "api_key", "apikey", "key", "password", "secret", "sig", "signature"}
)

_registered: set[str] = set()
_pattern: re.Pattern[str] | None = None
# user:password@ in any URL, whether or not its password was registered.
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@")


def register(*secrets: str | None) -> None:
    """Mask these values in everything this process writes from now on."""
    global _pattern
    added = {s for s in secrets if s and len(s) >= MIN_SECRET} - _registered
    if not added:
        return
    _registered.update(added)
    # Longest first, so a secret that contains another is masked whole; only where it is
    # not part of a longer word (a password "storm" leaves "barnstorm" alone).
    ordered = sorted(_registered, key=len, reverse=True)
    alternatives = "|".join(re.escape(s) for s in ordered)
    _pattern = re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])")


def register_url(url: str | None) -> None:
    """Register the password and secret query values a URL carries."""
    if not url:
        return
    try:
        parts = urlsplit(url)
        register(parts.password)
        register(*(value for key, value in parse_qsl(parts.query) if key.lower() in SECRET_PARAMS))
    except ValueError:
        return


def scrub(text: str) -> str:
    """``text`` with every registered secret and every URL password masked."""
    if _pattern is not None:
        text = _pattern.sub(MASK, text)
    if "@" in text:
        text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return text


def redact_url(url: str) -> str:
    """``url`` with its password and secret query values replaced by ``***``."""
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            host = parts.netloc.rsplit("@", 1)[1]
            parts = parts._replace(netloc=f"{parts.username or ''}:{MASK}@{host}")
        if parts.query:
            pairs = parse_qsl(parts.query, keep_blank_values=True)
            masked = [(k, MASK if k.lower() in SECRET_PARAMS else v) for k, v in pairs]
            parts = parts._replace(query=urlencode(masked, safe="*"))
        return scrub(parts.geturl())
    except ValueError:
        return scrub(url)


def scrub_data(value: Any) -> Any:
    """A JSON-like value with every string scrubbed (keys included)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub_data(k): scrub_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_data(v) for v in value]
    return value


def write_private(path: Path, text: str, flag: str) -> None:
    """Write ``text`` (scrubbed) to ``path``, readable by its owner only, atomically (a
    half-written report is worse than none); a path that cannot be written is a
    :class:`ConfigError` naming ``flag``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if path.exists() and not path.is_file():  # /dev/stdout, a pipe: written in place
            with path.open("w", encoding="utf-8") as handle:
                handle.write(scrub(text))
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(scrub(text))
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ConfigError(flag, f"cannot write {path} ({exc.strerror or exc})") from None


def open_private(path: Path, mode: str = "wb") -> Any:
    """``path`` opened for writing, created readable by its owner only."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode otherwise
    return os.fdopen(fd, mode)


class _ScrubbingStream(io.TextIOBase):
    """A text stream that scrubs what is written before passing it on."""

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        self._inner.write(scrub(text))
        return len(text)

    def flush(self) -> None:
        self._inner.flush()

    def isatty(self) -> bool:
        return self._inner.isatty()

    def fileno(self) -> int:
        return self._inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._inner.encoding

    @property
    def buffer(self) -> Any:
        # Binary writers (the result stream) write numbers and names, never secrets.
        return self._inner.buffer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def guard_streams() -> None:
    """Scrub everything this process writes to stdout and stderr (idempotent)."""
    if not isinstance(sys.stdout, _ScrubbingStream):
        sys.stdout = _ScrubbingStream(sys.stdout)
    if not isinstance(sys.stderr, _ScrubbingStream):
        sys.stderr = _ScrubbingStream(sys.stderr)


def protect(secrets: Iterable[str | None] = (), urls: Iterable[str | None] = ()) -> None:
    """Register ``secrets`` and the secrets in ``urls``, and guard the standard streams."""
    register(*secrets)
    for url in urls:
        register_url(url)
    guard_streams()
