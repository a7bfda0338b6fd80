"""Reading a browser recording (HAR 1.2) for ``simulate har2map``: its API calls grouped
into page views in time order, with what the map needs of each (the answer, the headers
sent, the cookies set), and where a value of an answer lies in it."""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from simulator.errors import ConfigError

STATIC_TYPES = {"document", "stylesheet", "script", "image", "font", "media", "manifest"}
STATIC_MIME = re.compile(r"^(text/html|text/css|image/|font/|audio/|video/|.*javascript)")
STATIC_EXTENSION = re.compile(
    r"\.(js|mjs|css|map|png|jpe?g|gif|svg|ico|webp|avif|woff2?|ttf|otf|eot|mp4|webm|html?)$"
)


@dataclass
class Call:
    """One API request of the recording, with what the map needs of it."""

    method: str
    path: str
    query: list[tuple[str, str]]
    body: str | None
    status: int
    started: float  # epoch seconds
    ended: float
    answer: Any  # the parsed JSON answer, or None
    headers: dict[str, str]  # the request's, names in lower case
    #: the cookies its answer set, name -> value.
    cookies_set: dict[str, str] = field(default_factory=dict)


def _instant(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _answer(entry: dict[str, Any]) -> Any:
    content = entry.get("response", {}).get("content", {}) or {}
    text = content.get("text")
    if not text:
        return None
    if content.get("encoding") == "base64":
        try:
            text = base64.b64decode(text).decode("utf-8", "replace")
        except ValueError:
            return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _is_static(entry: dict[str, Any], path: str) -> bool:
    kind = str(entry.get("_resourceType", "")).lower()
    if kind in STATIC_TYPES:
        return True
    if kind in ("xhr", "fetch"):
        return False
    mime = str(entry.get("response", {}).get("content", {}).get("mimeType", "")).lower()
    return bool(STATIC_MIME.match(mime) or STATIC_EXTENSION.search(path.lower()))


def _is_page_load(entry: dict[str, Any]) -> bool:
    kind = str(entry.get("_resourceType", "")).lower()
    if kind:
        return kind == "document"
    mime = str(entry.get("response", {}).get("content", {}).get("mimeType", "")).lower()
    return entry["request"]["method"] == "GET" and mime.startswith("text/html")


def _entries(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read the HAR file ({exc.strerror})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), f"not a HAR file: invalid JSON ({exc})") from None
    entries = data.get("log", {}).get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(str(path), 'not a HAR file: expected {"log": {"entries": [...]}}')
    for i, entry in enumerate(entries):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("request"), dict)
            and isinstance(entry["request"].get("url"), str)
            and isinstance(entry["request"].get("method"), str)
            and isinstance(entry.get("startedDateTime"), str)
        ):
            raise ConfigError(
                f"{path}: log.entries[{i}]", "expected request.method, request.url, startedDateTime"
            )
    return entries


def _html(entry: dict[str, Any]) -> str | None:
    """The text of an HTML answer, or None."""
    content = entry.get("response", {}).get("content", {}) or {}
    if not str(content.get("mimeType", "")).lower().startswith("text/html"):
        return None
    text = content.get("text")
    if not isinstance(text, str) or not text:
        return None
    if content.get("encoding") == "base64":
        try:
            return base64.b64decode(text).decode("utf-8", "replace")
        except ValueError:
            return None
    return text


def _cookies_set(entry: dict[str, Any]) -> dict[str, str]:
    """The cookies an answer set: HAR's ``response.cookies``, else its Set-Cookie headers."""
    response = entry.get("response") or {}
    found: dict[str, str] = {}
    for cookie in response.get("cookies") or []:
        if isinstance(cookie, dict) and cookie.get("name"):
            found[str(cookie["name"])] = str(cookie.get("value", ""))
    if found:
        return found
    for header in response.get("headers") or []:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == "set-cookie":
            for line in str(header.get("value", "")).split("\n"):
                pair = line.split(";", 1)[0]
                name, equals, value = pair.partition("=")
                if equals and name.strip():
                    found[name.strip()] = value.strip()
    return found


@dataclass
class PageView:
    """The API calls of one page view, and the page's path (None in a single-page app)."""

    page: str | None
    calls: list[Call]
    #: every answer of the view that set a cookie, documents' included: when it started,
    #: the request's path and the cookies (name -> value).
    cookies_set: list[tuple[float, str, dict[str, str]]] = field(default_factory=list)
    #: the HTML pages of the view (a CSRF token may be in one): started, path, text.
    pages: list[tuple[float, str, str]] = field(default_factory=list)


def read_views(path: Path, gap: float) -> tuple[list[PageView], list[str]]:
    """The recording's API calls, grouped into page views in time order."""
    entries = _entries(path)
    warnings: list[str] = []
    try:
        entries.sort(key=lambda e: _instant(e["startedDateTime"]))
    except ValueError as exc:
        raise ConfigError(f"{path}: startedDateTime", f"expected ISO 8601 ({exc})") from None
    origin = None
    for entry in entries:
        if _is_page_load(entry):
            origin = urlsplit(entry["request"]["url"]).netloc
            break
    # Page loads mark the views; a single-page app has one, and pauses mark its views.
    split_on_pauses = sum(1 for e in entries if _is_page_load(e)) <= 1
    views: list[PageView] = []
    current = PageView(None, [])
    pageref: Any = None
    last_end = 0.0
    foreign: Counter[str] = Counter()
    for entry in entries:
        request = entry["request"]
        url = urlsplit(request["url"])
        started = _instant(entry["startedDateTime"])
        page_load = _is_page_load(entry)
        new_page = page_load or entry.get("pageref") != pageref
        pageref = entry.get("pageref")
        pause = split_on_pauses and current.calls and started - last_end > gap
        if new_page or pause:
            # A page with no API call hands what it set and showed to the next view.
            kept, shown = ([], []) if current.calls else (current.cookies_set, current.pages)
            if current.calls:
                views.append(current)
            current = PageView(url.path if page_load else None, [], kept, shown)
        if origin is None:
            origin = url.netloc
        if url.netloc != origin:
            foreign[url.netloc] += 1
            continue
        cookies = _cookies_set(entry)
        if cookies:
            current.cookies_set.append((started, url.path, cookies))
        html = _html(entry)
        if html:
            current.pages.append((started, url.path, html))
        if _is_static(entry, url.path):
            continue
        post = request.get("postData") or {}
        headers = {
            str(h.get("name", "")).lower(): str(h.get("value", ""))
            for h in request.get("headers", [])
            if isinstance(h, dict)
        }
        ended = started + max(float(entry.get("time") or 0.0), 0.0) / 1000.0
        current.calls.append(
            Call(
                request["method"].upper(),
                url.path,
                parse_qsl(url.query, keep_blank_values=True),
                post.get("text") if isinstance(post, dict) else None,
                int(entry.get("response", {}).get("status") or 200),
                started,
                ended,
                _answer(entry),
                headers,
                cookies,
            )
        )
        last_end = max(last_end, ended)
    if current.calls:
        views.append(current)
    for host, count in foreign.most_common():
        warnings.append(f"dropped {count} request(s) to another host, {host}")
    return views, warnings


def find_path(data: Any, value: str, prefix: str = "") -> str | None:
    """The dotted path of ``value`` in a JSON answer, or None; a list's items are ``*``
    (``items.*.id``: the map draws one of them, as a person picks one of a list)."""
    if isinstance(data, dict):
        for key, item in data.items():
            found = find_path(item, value, f"{prefix}{key}.")
            if found:
                return found
    elif isinstance(data, list):
        for item in data:
            found = find_path(item, value, f"{prefix}*.")
            if found:
                return found
    elif data is not None and not isinstance(data, bool) and str(data) == value:
        return prefix.rstrip(".")
    return None
