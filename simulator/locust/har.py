"""``simulate har2map``: a dashboard map from a browser recording (HAR).

Record a session on your dashboards (Chrome DevTools, Network tab, "Export HAR", or any
tool that writes HAR 1.2) and turn it into a dashboard map for the Locust users:

- **Requests**: the API calls only. Documents, scripts, stylesheets, images, fonts and
  media are dropped, and so are requests to other hosts (analytics, CDNs).
- **Views**: the calls are grouped by page: a new view starts at each page load (a
  document request or a new HAR page) and after a pause longer than ``gap`` seconds (for
  single-page apps). Views whose requests have the same shape are merged: the view's
  weight is how often it was seen, its think time is the range of pauses that followed it.
- **IDs**: a path segment after ``farms``, ``rooms`` or ``devices`` becomes
  ``{farm_id}``, ``{room_id}`` or ``{device_id}`` (the simulated fleet's own IDs on
  replay). Another ID-like segment (digits, UUIDs, hex) becomes a value extracted from an
  earlier answer in the same view where the recording found it (``extract``); query
  values that are epoch seconds become ``{to}`` and ``{from}``, with the view's
  ``window_days``.
- **Login**: the request whose answer holds the token later sent in an
  ``Authorization`` header becomes the map's ``[login]`` step; the header leaves the
  requests.

- **Secrets**: passwords, tokens and API keys in recorded bodies and query strings become
  ``{env:BARNSTORM_LOGIN_PASSWORD}``-style placeholders, taken from the environment on
  replay; har2map says each one it replaced.

The result is plain TOML to read and edit: check it before a run.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from simulator.errors import ConfigError
from simulator.locust.har_secrets import scrub_body, secret_name, variable

#: path segment before an ID -> the fleet placeholder it becomes.
COLLECTIONS = {
    "farms": "farm_id",
    "farm": "farm_id",
    "sites": "farm_id",
    "rooms": "room_id",
    "room": "room_id",
    "barns": "room_id",
    "devices": "device_id",
    "device": "device_id",
    "sensors": "device_id",
}
STATIC_TYPES = {"document", "stylesheet", "script", "image", "font", "media", "manifest"}
STATIC_MIME = re.compile(r"^(text/html|text/css|image/|font/|audio/|video/|.*javascript)")
STATIC_EXTENSION = re.compile(
    r"\.(js|mjs|css|map|png|jpe?g|gif|svg|ico|webp|avif|woff2?|ttf|otf|eot|mp4|webm|html?)$"
)
ID_LIKE = re.compile(
    r"^(\d+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{16,}"
    r"|[A-Za-z]+[-_][A-Za-z0-9-_]*\d[A-Za-z0-9-_]*)$",
    re.IGNORECASE,
)
LOGIN_PATH = re.compile(r"log-?in|sign-?in|token|auth|session", re.IGNORECASE)
DEFAULT_THINK = (2.0, 8.0)
#: the longest pause taken as a think time (a longer one was a break, not reading).
MAX_THINK = 120.0
DAY = 86400.0


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
    headers: dict[str, str]


@dataclass
class Template:
    """A call with its IDs turned into placeholders."""

    method: str
    url: str
    body: str | None
    #: the statuses a replay accepts: every status the recording saw for this request
    #: (in any visit of its view), and 200 beside an error status the app took in stride.
    expect: tuple[int, ...]
    extract: dict[str, str] = field(default_factory=dict)
    window: float | None = None  # seconds between {from} and {to}

    @property
    def name(self) -> str:
        path = self.url.split("?")[0]
        return self.method + " " + re.sub(r"{(\w+)}", r"[\1]", path)

    def shape(self) -> tuple[str, str, str | None]:
        return (self.method, self.url, self.body)


@dataclass
class ViewDraft:
    name: str
    requests: list[Template]
    think: float | None  # the pause after this view, seconds


@dataclass
class MapDraft:
    login: Template | None
    token_path: str
    header: str
    scheme: str
    views: list[tuple[str, int, tuple[float, float], float | None, list[Template]]]
    warnings: list[str]
    #: view -> the views that followed it in the recording, and how often.
    transitions: dict[str, Counter[str]] = field(default_factory=dict)


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


@dataclass
class PageView:
    """The API calls of one page view, and the page's path (None in a single-page app)."""

    page: str | None
    calls: list[Call]


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
            if current.calls:
                views.append(current)
            current = PageView(url.path if page_load else None, [])
        if origin is None:
            origin = url.netloc
        if url.netloc != origin:
            foreign[url.netloc] += 1
            continue
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
            )
        )
        last_end = max(last_end, ended)
    if current.calls:
        views.append(current)
    for host, count in foreign.most_common():
        warnings.append(f"dropped {count} request(s) to another host, {host}")
    return views, warnings


def _find(data: Any, value: str, prefix: str = "") -> str | None:
    """The dotted path of ``value`` in a JSON answer (list indexes as 0), or None."""
    if isinstance(data, dict):
        for key, item in data.items():
            found = _find(item, value, f"{prefix}{key}.")
            if found:
                return found
    elif isinstance(data, list):
        for item in data:
            found = _find(item, value, f"{prefix}0.")
            if found:
                return found
    elif data is not None and not isinstance(data, bool) and str(data) == value:
        return prefix.rstrip(".")
    return None


def _login(views: list[PageView]) -> tuple[Call | None, str, str, str]:
    """The call whose answer holds the token that later calls send, and how they send it."""
    calls = [call for view in views for call in view.calls]
    for call in calls:
        for name in ("authorization", "x-auth-token", "x-api-key"):
            value = call.headers.get(name)
            if not value:
                continue
            scheme, _, token = value.rpartition(" ")
            for earlier in calls:
                if earlier.started >= call.started:
                    break
                path = _find(earlier.answer, token)
                if path:
                    header = "Authorization" if name == "authorization" else name
                    return earlier, path, header, scheme
            # The answer may be missing (browsers drop bodies when a page navigates away):
            # the last sign-in-like POST before the first authorised call is the login.
            for earlier in reversed([c for c in calls if c.started < call.started]):
                if earlier.method == "POST" and LOGIN_PATH.search(earlier.path):
                    header = "Authorization" if name == "authorization" else name
                    return earlier, "", header, scheme
            return None, "token", "Authorization", "Bearer"
    return None, "token", "Authorization", "Bearer"


def _template(call: Call, earlier: list[tuple[Call, Template]], warnings: list[str]) -> Template:
    """``call`` with its IDs as placeholders; a value found in an earlier answer (of the
    view, or of a view before it in the session) is extracted there (into that earlier
    template's ``extract``)."""
    segments = call.path.split("/")
    for i, segment in enumerate(segments):
        if not segment or not ID_LIKE.match(segment):
            continue
        collection = segments[i - 1].lower() if i else ""
        if collection in COLLECTIONS:
            segments[i] = "{" + COLLECTIONS[collection] + "}"
            continue
        for previous, previous_template in reversed(earlier):
            found = _find(previous.answer, segment)
            if found:
                name = re.sub(r"\W", "_", collection.rstrip("s") or "item") + "_id"
                segments[i] = "{" + name + "}"
                previous_template.extract[name] = found
                break
        else:
            warnings.append(
                f'{call.method} {call.path}: "{segment}" looks like an ID but no earlier answer '
                "holds it; kept as recorded"
            )
    query = []
    epochs = [
        (k, float(v))
        for k, v in call.query
        if re.fullmatch(r"\d{9,10}(\.\d+)?", v) and abs(float(v) - call.started) < 400 * DAY
    ]
    to_key = max(epochs, key=lambda kv: kv[1])[0] if epochs else None
    window = None
    for key, value in call.query:
        if key == to_key:
            query.append(f"{key}={{to}}")
        elif epochs and any(k == key for k, _ in epochs):
            query.append(f"{key}={{from}}")
            window = max(v for _, v in epochs) - float(value)
        elif secret_name(key):
            name = variable(key, login=False)
            query.append(f"{key}={{env:{name}}}")
            warnings.append(_replaced(f"{call.method} {call.path}", key, name))
        else:
            query.append(f"{key}={value}")
    url = "/".join(segments) + ("?" + "&".join(query) if query else "")
    body, names, _ = scrub_body(call.body, login=False)
    warnings += [_replaced(f"{call.method} {call.path}", "body", name) for name in names]
    expect = (call.status,) if 200 <= call.status < 300 else (200, call.status)
    return Template(call.method, url, body, expect, window=window)


def _view_name(page: str | None, templates: list[Template]) -> str:
    """``farm_room`` for ``/dashboard/farms/{farm_id}/rooms/{room_id}``: the page's words,
    a collection followed by an ID in the singular."""
    path = page if page is not None else templates[-1].url.split("?")[0]
    parts = [p for p in path.split("/") if p and p not in ("api", "dashboard", "app")]
    words = []
    for i, part in enumerate(parts):
        if ID_LIKE.match(part) or part.startswith("{"):
            continue
        followed_by_id = i + 1 < len(parts) and (
            ID_LIKE.match(parts[i + 1]) or parts[i + 1].startswith("{")
        )
        words.append(part[:-1] if followed_by_id and part.endswith("s") else part)
    return re.sub(r"\W+", "_", "_".join(words[-2:]) or "home").strip("_").lower()


def build_map(path: Path, gap: float = 1.0) -> MapDraft:
    """Read a HAR file and draft a dashboard map of it."""
    views, warnings = read_views(path, gap)
    login_call, token_path, header, scheme = _login(views)
    if login_call is not None and not token_path:
        token_path = "token"
        warnings.append(
            f"the answer of {login_call.method} {login_call.path} is not in the recording: "
            'assumed the token is its "token" key (check [login].token)'
        )
    login = None
    drafts: list[ViewDraft] = []
    # Calls of the views before, for IDs a later view uses (the farm the list showed,
    # then its room): a map's extracted values stay with the user for its later views.
    session: list[tuple[Call, Template]] = []
    for index, view in enumerate(views):
        calls = view.calls
        kept = [c for c in calls if c is not login_call]
        if login_call in calls and login is None:
            body, secrets, _ = scrub_body(login_call.body, login=True)
            warnings += [_replaced("[login]", "body", name) for name in secrets]
            login = Template(login_call.method, login_call.path, body, (200,))
        if not kept:
            continue
        paired: list[tuple[Call, Template]] = []
        for call in kept:
            paired.append((call, _template(call, session + paired, warnings)))
        session += paired
        templates = [template for _, template in paired]
        think = None
        if index + 1 < len(views):
            think = max(0.0, views[index + 1].calls[0].started - max(c.ended for c in calls))
        drafts.append(ViewDraft(_view_name(view.page, templates), templates, think))
    if not drafts:
        raise ConfigError(str(path), "no API requests found (only static assets or none)")
    merged: dict[tuple[Any, ...], list[ViewDraft]] = {}
    for draft in drafts:
        merged.setdefault(tuple(t.shape() for t in draft.requests), []).append(draft)
    out = []
    names: Counter[str] = Counter()
    named: dict[int, str] = {}  # a draft (by id) -> the name of the view it merged into
    for group in merged.values():
        first = group[0]
        for position, template in enumerate(first.requests):
            seen = {code for draft in group for code in draft.requests[position].expect}
            template.expect = tuple(sorted(seen))
            for draft in group[1:]:  # what a later visit's answer gave to later views
                for name, found in draft.requests[position].extract.items():
                    template.extract.setdefault(name, found)
        pauses = [d.think for d in group if d.think is not None]
        pauses = [min(pause, MAX_THINK) for pause in pauses]  # a coffee break is no think time
        span = (round(min(pauses), 1), round(max(pauses), 1)) if pauses else DEFAULT_THINK
        windows = [t.window for t in first.requests if t.window]
        name = first.name
        names[name] += 1
        if names[name] > 1:
            name = f"{name}_{names[name]}"
        named.update((id(draft), name) for draft in group)
        out.append((name, len(group), span, windows[0] / DAY if windows else None, first.requests))
    if login is None and any("authorization" in c.headers for v in views for c in v.calls):
        warnings.append(
            "requests carry an Authorization header but no answer in the recording holds its "
            "token: add a [login] step to the map"
        )
    transitions: dict[str, Counter[str]] = {}
    for before, after in itertools.pairwise(drafts):
        transitions.setdefault(named[id(before)], Counter())[named[id(after)]] += 1
    return MapDraft(login, token_path, header, scheme, out, warnings, transitions)


def _replaced(where: str, field: str, name: str) -> str:
    return (
        f"{where}: the recorded secret in its {field} is now {{env:{name}}}: set {name} "
        "before a run (the map keeps no secret)"
    )


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def render(draft: MapDraft, source: str) -> str:
    """The map as TOML, with a header saying where it came from."""
    lines = [
        f"# Dashboard map made by `simulate har2map` from {Path(source).name}.",
        "# Check it before a run. Secrets of the recording are {env:NAME} placeholders: set",
        "# each NAME in the environment (a CI variable) before a run.",
        "",
    ]
    if draft.login is not None:
        lines += [
            "[login]",
            f"method = {_string(draft.login.method)}",
            f"url = {_string(draft.login.url)}",
        ]
        if draft.login.body:
            lines.append(f"body = {_string(draft.login.body)}")
        lines += [
            f"token = {_string(draft.token_path)}",
            f"header = {_string(draft.header)}",
            f"scheme = {_string(draft.scheme)}",
            "",
        ]
    for name, weight, think, window_days, requests in draft.views:
        lines += [f"[views.{name}]", f"weight = {weight}", f"think = [{think[0]}, {think[1]}]"]
        if window_days is not None:
            lines.append(f"window_days = {round(window_days, 3)}")
        followed = draft.transitions.get(name)
        if followed:  # the navigation the recording did, for --navigation chain
            pairs = ", ".join(f"{view} = {count}" for view, count in followed.most_common())
            lines.append(f"next = {{ {pairs} }}")
        for template in requests:
            lines += [
                f"[[views.{name}.requests]]",
                f"name = {_string(template.name)}",
                f"method = {_string(template.method)}",
                f"url = {_string(template.url)}",
            ]
            if template.body is not None:
                lines.append(f"body = {_string(template.body)}")
            codes = template.expect
            lines.append(f"expect = {codes[0] if len(codes) == 1 else list(codes)}")
            if template.extract:
                pairs = ", ".join(f"{k} = {_string(v)}" for k, v in template.extract.items())
                lines.append(f"extract = {{ {pairs} }}")
        lines.append("")
    return "\n".join(lines)
