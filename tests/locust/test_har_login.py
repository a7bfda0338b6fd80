"""How har2map finds a recorded session's login and CSRF token, on small recordings made
here: a session cookie set by a sign-in POST, a CSRF token sent back from a cookie or from
the page that showed it (a <meta> tag), and the map that results loads and reads it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from simulator.locust.dashboard_map import load_map
from simulator.locust.har import build_map, render

TOKEN = "Zq8mK2pVx7RtW4nL"
SESSION = "s3ss10n-abcdef-123456"


def _entry(
    at: int,
    method: str,
    url: str,
    *,
    kind: str = "fetch",
    headers: dict[str, str] | None = None,
    body: str | None = None,
    mime: str = "application/json",
    answer: str = "{}",
    cookies: dict[str, str] | None = None,
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "method": method,
        "url": f"https://app.example.com{url}",
        "headers": [{"name": k, "value": v} for k, v in (headers or {}).items()],
    }
    if body is not None:
        request["postData"] = {"mimeType": "application/json", "text": body}
    return {
        "startedDateTime": f"2026-12-08T10:00:{at:02d}.000Z",
        "time": 50,
        "_resourceType": kind,
        "request": request,
        "response": {
            "status": 200,
            "headers": [],
            "cookies": [{"name": k, "value": v} for k, v in (cookies or {}).items()],
            "content": {"mimeType": mime, "text": answer},
        },
    }


def _recording(tmp_path: Path, csrf_from_page: bool) -> Path:
    page = (
        f'<html><head><meta name="csrf-token" content="{TOKEN}"></head><body>sign in</body></html>'
    )
    sent = {"x-csrf-token": TOKEN, "cookie": "" if csrf_from_page else f"XSRF={TOKEN}"}
    entries = [
        _entry(
            0,
            "GET",
            "/signin",
            kind="document",
            mime="text/html",
            answer=page,
            cookies=None if csrf_from_page else {"XSRF": TOKEN},
        ),
        _entry(
            2,
            "POST",
            "/session",
            headers=sent,
            body=json.dumps({"email": "a@b.c", "password": "pw-123456"}),
            cookies={"sid": SESSION},
        ),
        _entry(
            4,
            "GET",
            "/api/barns",
            headers={"cookie": f"sid={SESSION}"},
            answer=json.dumps({"barns": [{"id": 17}]}),
        ),
    ]
    path = tmp_path / "session.har"
    path.write_text(json.dumps({"log": {"entries": entries}}))
    return path


def test_a_csrf_token_from_the_page_becomes_a_pattern_that_finds_it(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The token the sign-in POST sends was in the sign-in page's <meta> tag, not in a
    cookie: the map opens that page first and reads the token from it with a pattern
    (which finds another token in the same tag), the sid cookie carries the login, and
    the map keeps neither the password nor the token nor the session."""
    draft = build_map(_recording(tmp_path, csrf_from_page=True))
    assert draft.found.token == ""
    assert draft.found.csrf_url == "/signin"
    assert draft.found.csrf_cookie is None
    pattern = draft.found.csrf_pattern
    assert pattern is not None
    found = re.search(pattern, '<meta name="csrf-token" content="another-token-99">')
    assert found is not None
    assert found.group(1) == "another-token-99"
    text = render(draft, "session.har")
    assert TOKEN not in text
    assert SESSION not in text
    assert "pw-123456" not in text
    (tmp_path / "map.toml").write_text(text)
    monkeypatch.setenv("BARNSTORM_LOGIN_PASSWORD", "pw")
    loaded = load_map(tmp_path / "map.toml")
    assert loaded.login is not None
    assert loaded.login.csrf_pattern == pattern


def test_a_csrf_token_from_a_cookie_is_sent_back_from_the_cookie(tmp_path: Path) -> None:
    """The same token, set as the XSRF cookie by the page: the map names the cookie and
    no pattern."""
    draft = build_map(_recording(tmp_path, csrf_from_page=False))
    assert (draft.found.csrf_url, draft.found.csrf_cookie) == ("/signin", "XSRF")
    assert draft.found.csrf_pattern is None
    assert draft.found.csrf_header == "x-csrf-token"
