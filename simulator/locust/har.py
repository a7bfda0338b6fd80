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

import itertools
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.errors import ConfigError
from simulator.locust.har_login import LoginFound, find_login
from simulator.locust.har_read import Call, find_path, read_views
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
ID_LIKE = re.compile(
    r"^(\d+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{16,}"
    r"|[A-Za-z]+[-_][A-Za-z0-9-_]*\d[A-Za-z0-9-_]*)$",
    re.IGNORECASE,
)
#: an ID of barnstorm's own fleet (``farm-00001``, ``farm-00001-s1-r01``, a device's).
FLEET_ID = re.compile(r"^[a-z]+-\d{5}(-[\w-]*)?$")
DEFAULT_THINK = (2.0, 8.0)
#: the longest pause taken as a think time (a longer one was a break, not reading).
MAX_THINK = 120.0
DAY = 86400.0


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
    found: LoginFound
    views: list[tuple[str, int, tuple[float, float], float | None, list[Template]]]
    warnings: list[str]
    #: view -> the views that followed it in the recording, and how often.
    transitions: dict[str, Counter[str]] = field(default_factory=dict)


def _template(call: Call, earlier: list[tuple[Call, Template]], warnings: list[str]) -> Template:
    """``call`` with its IDs as placeholders; a value found in an earlier answer (of the
    view, or of a view before it in the session) is extracted there (into that earlier
    template's ``extract``)."""
    segments = call.path.split("/")
    for i, segment in enumerate(segments):
        if not segment or not ID_LIKE.match(segment):
            continue
        collection = segments[i - 1].lower() if i else ""
        if collection in COLLECTIONS and FLEET_ID.match(segment):  # barnstorm's own fleet
            segments[i] = "{" + COLLECTIONS[collection] + "}"
            continue
        for previous, previous_template in reversed(earlier):
            found = find_path(previous.answer, segment)
            if found:  # the product's own ID, from the answer that listed it
                name = re.sub(r"\W", "_", collection.rstrip("s") or "item") + "_id"
                segments[i] = "{" + name + "}"
                previous_template.extract[name] = found
                break
        else:
            if collection in COLLECTIONS:  # the fleet's, bound by --device-map on replay
                segments[i] = "{" + COLLECTIONS[collection] + "}"
                continue
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
    found = find_login(views)
    login_call = found.call
    if login_call is not None and found.token is None:
        found.token = "token"
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
                for name, dotted in draft.requests[position].extract.items():
                    template.extract.setdefault(name, dotted)
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
    return MapDraft(login, found, out, warnings, transitions)


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
        found = draft.found
        if found.token:
            lines += [
                f"token = {_string(found.token)}",
                f"header = {_string(found.header)}",
                f"scheme = {_string(found.scheme)}",
            ]
        else:
            lines.append('token = ""  # a session cookie carries the login')
        if found.csrf_url and found.csrf_header:
            lines.append(f"csrf_url = {_string(found.csrf_url)}")
            if found.csrf_cookie:
                lines.append(f"csrf_cookie = {_string(found.csrf_cookie)}")
            if found.csrf_pattern:
                lines.append(f"csrf_pattern = {_string(found.csrf_pattern)}")
            lines.append(f"csrf_header = {_string(found.csrf_header)}")
        lines.append("")
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
