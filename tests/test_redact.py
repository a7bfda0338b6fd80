"""The secrets filter: registered secrets and URL passwords are masked in every text that
passes the door out (streams, report writers), written files are private, and a special
file is written in place, never replaced."""

from __future__ import annotations

import io
import stat
import sys
import uuid
from pathlib import Path

import pytest

from simulator import redact
from simulator.errors import ConfigError


def test_registered_secrets_and_url_passwords_are_masked_anywhere_in_a_text() -> None:
    """A registered secret is masked wherever it appears (a library's error message, a
    JSON report), the longest first; any URL's password is masked registered or not; a
    secret too short to mask inside text stays (it would mask ordinary letters)."""
    secret = f"tok-{uuid.uuid4().hex}"
    word = f"w{uuid.uuid4().hex[:6]}"
    redact.register(secret, secret[:6], "ab", word)
    text = f'error: 401 for {secret} and "{secret[:6]}"; see https://u:pw@h/x and ab'
    masked = redact.scrub(text)
    assert secret not in masked
    assert secret[:6] not in masked
    assert "https://u:***@h/x" in masked
    assert masked.endswith("and ab")
    # A secret inside a longer word is that word, not the secret (barnstorm, password
    # "storm"); standing alone or between punctuation it is masked.
    assert redact.scrub(f"barn{word}, {word}; :{word}@") == f"barn{word}, ***; :***@"


def test_a_url_is_redacted_at_its_source() -> None:
    """Passwords and secret query values of a URL are replaced, the rest kept."""
    url = "https://dev:s3cret@ingest.example:8443/in?token=abc123&farm=1&api_key=k"
    assert redact.redact_url(url) == (
        "https://dev:***@ingest.example:8443/in?token=***&farm=1&api_key=***"
    )
    assert redact.redact_url("http://[::1") == "http://[::1"


def test_guarded_streams_scrub_what_is_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once guarded, stdout and stderr pass everything through the filter."""
    secret = f"pw-{uuid.uuid4().hex}"
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    redact.protect([secret], ["mqtt://u:other-secret@h"])
    print(f"connecting with {secret}")
    print("mqtt://u:other-secret@h refused", file=sys.stderr)
    assert out.getvalue() == "connecting with ***\n"
    assert err.getvalue() == "mqtt://u:***@h refused\n"


def test_reports_are_written_private_scrubbed_and_whole(tmp_path: Path) -> None:
    """A report file is created readable by its owner only (also over an existing
    world-readable one), holds no registered secret, and a directory that cannot be
    written is one error naming the flag."""
    secret = f"key-{uuid.uuid4().hex}"
    redact.register(secret)
    path = tmp_path / "report.html"
    path.write_text("old")
    path.chmod(0o644)
    redact.write_private(path, f"<p>{secret}</p>", "--html")
    assert path.read_text() == "<p>***</p>"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left
    with pytest.raises(ConfigError, match=r"^--html: cannot write"):
        redact.write_private(Path("/proc/no/such/dir/x.html"), "x", "--html")


def test_a_special_file_is_written_in_place_not_replaced(tmp_path: Path) -> None:
    """Writing a report to a device such as /dev/null writes to it; it stays a device (a
    rename over it would have replaced it with a regular file)."""
    redact.write_private(Path("/dev/null"), "nothing", "--report")
    assert stat.S_ISCHR(Path("/dev/null").stat().st_mode)
    with pytest.raises(ConfigError, match="--report: cannot write /dev/full"):
        redact.write_private(Path("/dev/full"), "x" * 10_000, "--report")
    assert stat.S_ISCHR(Path("/dev/full").stat().st_mode)
