"""How the recorded session logged in, for ``simulate har2map``'s ``[login]`` step.

Three ways a dashboard keeps a user logged in, each found from what the recording holds:

- **A token in a header**: a later request sends ``Authorization: Bearer <t>`` (or
  ``X-Auth-Token``, ``X-API-Key``) and an earlier answer holds ``<t>``: that request is the
  login, and the token's path in its answer is the map's ``token``.
- **A session cookie**: a sign-in-like POST whose answer set a cookie that later requests
  send back: the login, with ``token = ""`` (the user's cookie jar carries it).
- **A CSRF token**: a request sends a header (``X-CSRFToken``, ``X-XSRF-Token``) whose value
  is a cookie an earlier answer set: the map GETs that answer's page before logging in
  (``csrf_url``) and sends the cookie back in that header (``csrf_cookie``,
  ``csrf_header``) on every request that changes something; or whose value an earlier
  HTML page showed (a ``<meta name="csrf-token">``, a form's hidden input): the map reads
  it from that page by what stood before it (``csrf_pattern``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from simulator.locust.har_read import Call, PageView, find_path

LOGIN_PATH = re.compile(r"log-?in|sign-?in|token|auth|session", re.IGNORECASE)
TOKEN_HEADERS = ("authorization", "x-auth-token", "x-api-key")
CSRF_HEADER = re.compile(r"csrf|xsrf", re.IGNORECASE)


@dataclass
class LoginFound:
    """The recorded login and how the session carried it."""

    call: Call | None
    #: the token's path in the login's answer; "" for a session cookie; None when the
    #: answer is not in the recording (the map then assumes ``token``).
    token: str | None = "token"
    header: str = "Authorization"
    scheme: str = "Bearer"
    csrf_url: str | None = None
    csrf_cookie: str | None = None
    csrf_header: str | None = None
    csrf_pattern: str | None = None


def _sent_cookies(call: Call) -> dict[str, str]:
    pairs = (part.strip().partition("=") for part in call.headers.get("cookie", "").split(";"))
    return {name: value for name, equals, value in pairs if equals and name}


def _token_login(calls: list[Call]) -> LoginFound | None:
    """The call whose answer holds the token a later call sends in a header."""
    for call in calls:
        for name in TOKEN_HEADERS:
            value = call.headers.get(name)
            if not value:
                continue
            scheme, _, token = value.rpartition(" ")
            header = "Authorization" if name == "authorization" else name
            for earlier in calls:
                if earlier.started >= call.started:
                    break
                path = find_path(earlier.answer, token)
                if path:
                    return LoginFound(earlier, path, header, scheme)
            # The answer may be missing (browsers drop bodies when a page navigates away):
            # the last sign-in-like POST before the first authorised call is the login.
            for earlier in reversed([c for c in calls if c.started < call.started]):
                if earlier.method == "POST" and LOGIN_PATH.search(earlier.path):
                    return LoginFound(earlier, None, header, scheme)
            return None
    return None


def _cookie_login(calls: list[Call], csrf_cookie: str | None) -> LoginFound | None:
    """A sign-in-like POST whose answer set a cookie (not the CSRF one) that later calls
    send back: a session cookie carries the login."""
    for index, call in enumerate(calls):
        if call.method != "POST" or not LOGIN_PATH.search(call.path):
            continue
        session = {k: v for k, v in call.cookies_set.items() if k != csrf_cookie and v}
        for later in calls[index + 1 :]:
            sent = _sent_cookies(later)
            if any(sent.get(name) == value for name, value in session.items()):
                return LoginFound(call, "")
    return None


@dataclass
class Csrf:
    """Where the recorded session's CSRF token came from, and the header it went in."""

    page: str
    header: str
    cookie: str | None = None  # the cookie holding it, or
    pattern: str | None = None  # a regular expression that finds it in the page


def page_pattern(text: str, value: str) -> str | None:
    """A regular expression that finds ``value`` in the page ``text`` by what stands
    before it in its tag (``name="csrfmiddlewaretoken" value="``), or None."""
    at = text.find(value)
    if at < 0:
        return None
    tag = text.rfind("<", 0, at)
    before = text[max(tag, at - 120) if tag >= 0 else max(0, at - 40) : at]
    if not before.strip():
        return None
    return re.escape(before) + r"([^\"'<>\s]+)"


def _csrf(views: list[PageView], calls: list[Call]) -> Csrf | None:
    """A header of a recorded call that sends back a CSRF token: the cookie whose value
    it is and the page that set it first, or else the page that showed it."""
    setters = sorted(
        (entry for view in views for entry in view.cookies_set), key=lambda entry: entry[0]
    )
    pages = sorted((entry for view in views for entry in view.pages), key=lambda e: e[0])
    for call in calls:
        for header, value in call.headers.items():
            if not value or not CSRF_HEADER.search(header) or header == "cookie":
                continue
            for _, path, cookies in setters:
                for cookie, cookie_value in cookies.items():
                    if cookie_value == value:
                        return Csrf(path, header, cookie=cookie)
            for started, path, text in pages:
                pattern = page_pattern(text, value) if started < call.started else None
                if pattern:
                    return Csrf(path, header, pattern=pattern)
    return None


def find_login(views: list[PageView]) -> LoginFound:
    """The recorded login (``call`` None when there is none) and how it was carried."""
    calls = [call for view in views for call in view.calls]
    csrf = _csrf(views, calls)
    found = _token_login(calls) or _cookie_login(calls, csrf.cookie if csrf else None)
    found = found or LoginFound(None)
    if csrf is not None:
        found.csrf_url, found.csrf_header = csrf.page, csrf.header
        found.csrf_cookie, found.csrf_pattern = csrf.cookie, csrf.pattern
    return found
