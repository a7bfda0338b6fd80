"""Dashboard maps: which requests each dashboard view issues, as data (``dashboard_map.toml``).

A map names a login step and views. Each view has a weight (how often users open it), a
think time after it, optionally the views that follow it (``next = { farm = 3 }``: the
recording's navigation, which users follow from view to view), and requests issued in
sequence as a browser would: method, URL template, optional body, expected status and a
low-cardinality name for the report.
Templates take ``{farm_id}`` ``{room_id}`` ``{device_id}`` ``{from}`` ``{to}`` (epoch
seconds of a chart's window) and values a previous request extracted from its JSON
answer (``extract = { alert_id = "0.id" }``, or ``"items.*.id"``: one of all, at random),
kept for the user's later views (the room of the farm it opened), or drawn from a CSV the
team exported (``[sources.site] csv = "sites.csv"``, ``column = "id"``: one value per user,
kept). A CSV of logins (``[login] users = "logins.csv"``, the body's ``{csv:user}`` and
``{csv:password}`` its columns) gives each simulated user a login of its own, so that
per-user caches and permissions are exercised. ``{env:NAME}`` takes an environment
variable's value when the map is loaded (a password, an API key: the map goes in a
repository, the secret stays in the CI's variables); a map that names one that is not set is
refused. This module is plain Python: the Locust users import it, the engine never does.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.errors import ConfigError
from simulator.locust.har_secrets import secret_name
from simulator.redact import register
from simulator.resources import shipped
from simulator.tomlfile import Table

DEFAULT_MAP = shipped("locustfiles") / "dashboard_map.toml"
FLEET_PLACEHOLDERS = {"farm_id", "room_id", "device_id", "from", "to"}
ENV_PLACEHOLDER = re.compile(r"\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
CSV_PLACEHOLDER = re.compile(r"\{csv:([^{}:]+)\}")


def with_environment(
    text: str | None, where: str, *, json_text: bool, template: bool
) -> str | None:
    """``text`` with each ``{env:NAME}`` replaced by the variable's value (escaped for a
    JSON string in a body, its braces doubled in a template); the value is masked in all
    of barnstorm's output. An unset variable is a :class:`ConfigError` naming ``where``."""
    if text is None:
        return None

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        found = os.environ.get(name)
        if found is None:
            raise ConfigError(
                where, f"{{env:{name}}} has no value: set the environment variable {name}"
            )
        register(found)
        escaped = json.dumps(found)[1:-1] if json_text else found
        return escaped.replace("{", "{{").replace("}", "}}") if template else escaped

    return ENV_PLACEHOLDER.sub(value, text)


@dataclass(frozen=True)
class RequestSpec:
    name: str
    method: str
    url: str
    body: str | None
    expect: tuple[int, ...]
    #: placeholder name -> dotted path into this request's JSON answer.
    extract: dict[str, str]

    def placeholders(self, field: str | None = None) -> set[str]:
        """Placeholder names in the URL and body (or in one of them: "url", "body")."""
        names = set()
        texts = {"url": self.url, "body": self.body or ""}
        for name, text in texts.items():
            if field in (None, name):
                names |= {n for _, n, _, _ in string.Formatter().parse(text) if n}
        return names


@dataclass(frozen=True)
class View:
    name: str
    weight: float
    think: tuple[float, float]
    window_days: float
    requests: tuple[RequestSpec, ...]
    #: the views that may follow this one, by weight (the recording's navigation).
    next: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Login:
    method: str
    url: str
    body: str | None
    token: str  # the JSON path of the token in the answer; "": a session cookie instead
    header: str
    scheme: str
    #: a page to GET before logging in, for the CSRF cookie it sets (None: none).
    csrf_url: str | None = None
    #: the cookie holding the CSRF token, sent back in ``csrf_header`` on every request
    #: that changes something (POST, PUT, PATCH, DELETE), the login's included.
    csrf_cookie: str | None = None
    csrf_header: str = "X-CSRFToken"
    #: a regular expression whose one group finds the CSRF token in the ``csrf_url``
    #: page itself (a ``<meta name="csrf-token" content="...">``, a form's hidden input),
    #: for apps that put it there rather than in a cookie.
    csrf_pattern: str | None = None
    #: a CSV of logins (``users = "logins.csv"``): one row per simulated user, in turn,
    #: its columns ``{csv:COLUMN}`` in the body and URL (empty: one login for all).
    users: tuple[dict[str, str], ...] = ()

    def for_user(self, index: int) -> tuple[str, str | None]:
        """The URL and body of the ``index``-th simulated user's login."""
        if not self.users:
            return self.url, self.body
        row = self.users[index % len(self.users)]

        def fill(text: str | None, json_text: bool) -> str | None:
            if text is None:
                return None
            return CSV_PLACEHOLDER.sub(
                lambda m: json.dumps(row[m.group(1)])[1:-1] if json_text else row[m.group(1)],
                text,
            )

        return fill(self.url, False) or self.url, fill(self.body, True)


@dataclass(frozen=True)
class DashboardMap:
    source: str
    login: Login | None
    views: tuple[View, ...]
    #: placeholder name -> the product's own values (a CSV the team exported): each
    #: simulated user draws one at its start and keeps it.
    sources: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


def _csv_source(table: Table, name: str, base: Path) -> tuple[str, ...]:
    """A ``[sources.NAME]`` table: ``csv = "file.csv"``, ``column = "id"``; the file's
    values, every one present and none twice."""
    table.check_keys({"csv", "column"})
    file = base / table.string("csv")
    column = table.string("column", name)
    where = f"{file}"
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(table.where("csv"), f"cannot read {file}: {exc}") from None
    try:
        rows = list(csv.DictReader(io.StringIO(text)))
    except csv.Error as exc:
        raise ConfigError(where, f"not a CSV: {exc}") from None
    if not rows or column not in (rows[0].keys() if rows else ()):
        header = ", ".join(rows[0].keys()) if rows else "nothing"
        raise ConfigError(where, f'expected a column "{column}" and rows under it, got {header}')
    values = [str(row.get(column) or "").strip() for row in rows]
    for line, value in enumerate(values, start=2):
        if not value:
            raise ConfigError(f"{where}:{line}", f'no value in column "{column}"')
    duplicates = sorted({v for v in values if values.count(v) > 1})
    if duplicates:
        raise ConfigError(where, f'"{duplicates[0]}" is in column "{column}" twice')
    return tuple(values)


def _logins(table: Table, base: Path, url: str, body: str | None) -> tuple[dict[str, str], ...]:
    """``[login].users``: the CSV of logins, every ``{csv:COLUMN}`` of the login a column
    of it with a value in every row, and no login twice. Columns whose names say secret
    (``password``, ``secret``, ``token``) are masked in all of barnstorm's output."""
    used = set(CSV_PLACEHOLDER.findall(url)) | set(CSV_PLACEHOLDER.findall(body or ""))
    if "users" not in table:
        if used:
            raise table.error("body", f'{{csv:{sorted(used)[0]}}} needs users = "logins.csv"')
        return ()
    file = base / table.string("users")
    try:
        reader = csv.DictReader(io.StringIO(file.read_text(encoding="utf-8-sig")))
        rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(table.where("users"), f"cannot read {file}: {exc}") from None
    if not used:
        raise table.error("users", "expected {csv:COLUMN} placeholders in the login's body")
    columns = list(reader.fieldnames or [])
    missing = sorted(used - set(columns))
    if not rows or missing:
        header = ", ".join(columns) or "nothing"
        wanted = ", ".join(f'"{c}"' for c in sorted(missing or used))
        got = f"got {header}" + ("" if rows else " and no rows")
        raise ConfigError(str(file), f"expected a login per row under {wanted}, {got}")
    seen: set[tuple[str, ...]] = set()
    for line, row in enumerate(rows, start=2):
        for column in sorted(used):
            if not (row.get(column) or "").strip():
                raise ConfigError(f"{file}:{line}", f'no value in column "{column}"')
        login = tuple(row[c] for c in sorted(used))
        if login in seen:
            raise ConfigError(f"{file}:{line}", "the same login twice (one row per user)")
        seen.add(login)
    for column in used:
        if secret_name(column):
            for row in rows:
                register(row[column])
    return tuple({c: row[c] for c in used} for row in rows)


def _check_pattern(table: Table, pattern: str, page: str | None) -> None:
    """``[login].csrf_pattern``: a regular expression with one group, read from a page."""
    if not page:
        raise table.error("csrf_pattern", "needs csrf_url: the page to read the token from")
    try:
        groups = re.compile(pattern).groups
    except re.error as exc:
        raise table.error("csrf_pattern", f"not a regular expression: {exc}") from None
    if groups != 1:
        raise table.error("csrf_pattern", f"expected one (group) around the token, got {groups}")


def _token_path(table: Table) -> str:
    """``[login].token``: the token's path in the answer, or "" for a session cookie."""
    token = table.raw("token", "token")
    if not isinstance(token, str):
        raise table.error("token", 'expected the token\'s path in the answer, or "" (a cookie)')
    return token


def _request(table: Table) -> RequestSpec:
    table.check_keys({"name", "method", "url", "body", "expect", "extract"})
    method = table.string("method", "GET").upper()
    if method not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        raise table.error("method", f'"{method}" is not an HTTP method')
    where = f"{table.source}: {table.path}"
    url = with_environment(table.string("url"), f"{where}.url", json_text=False, template=True)
    assert url is not None
    raw_expect = table.raw("expect", 200)
    expect = raw_expect if isinstance(raw_expect, list) else [raw_expect]
    if not expect or not all(isinstance(c, int) and 100 <= c <= 599 for c in expect):
        raise table.error("expect", "expected an HTTP status or a list of them")
    extract_table = table.table("extract", required=False)
    extract = {name: extract_table.string(name) for name in extract_table}
    body = table.raw("body", None)
    if body is not None and not isinstance(body, str):
        raise table.error("body", "expected a string (a JSON document)")
    body = with_environment(body, f"{where}.body", json_text=True, template=True)
    spec = RequestSpec(
        table.string("name", f"{method} {url}"),
        method,
        url,
        body,
        tuple(int(c) for c in expect),
        extract,
    )
    for field in ("url", "body"):
        try:
            spec.placeholders(field)
        except ValueError as exc:
            raise table.error(field, f"{exc} (write literal braces as {{{{ and }}}})") from None
    return spec


def load_map(path: Path | None = None) -> DashboardMap:
    """Load and check a dashboard map; errors name the file and key."""
    file = path or DEFAULT_MAP
    root = Table.load(file)
    root.check_keys({"login", "views", "sources"})
    sources: dict[str, tuple[str, ...]] = {}
    if "sources" in root:
        sources_table = root.table("sources")
        for name in sources_table:
            if not re.fullmatch(r"[A-Za-z_]\w*", name) or name in FLEET_PLACEHOLDERS:
                raise sources_table.error(name, "expected a placeholder name of your own")
            sources[name] = _csv_source(sources_table.table(name), name, file.parent)
    login = None
    if "login" in root:
        table = root.table("login")
        table.check_keys(
            {
                "method", "url", "body", "token", "header", "scheme",
                "csrf_url", "csrf_cookie", "csrf_header", "csrf_pattern", "users",
            }
        )  # fmt: skip
        body = table.raw("body", None)
        if body is not None and not isinstance(body, str):
            raise table.error("body", "expected a string (a JSON document)")
        where = f"{table.source}: {table.path}"
        url = with_environment(table.string("url"), f"{where}.url", json_text=False, template=False)
        body = with_environment(body, f"{where}.body", json_text=True, template=False)
        login = Login(
            table.string("method", "POST").upper(),
            url or "",
            body,
            _token_path(table),
            table.string("header", "Authorization"),
            table.string("scheme", "Bearer"),
            table.string("csrf_url") if "csrf_url" in table else None,
            table.string("csrf_cookie") if "csrf_cookie" in table else None,
            table.string("csrf_header", "X-CSRFToken"),
            table.string("csrf_pattern") if "csrf_pattern" in table else None,
            _logins(table, file.parent, url or "", body),
        )
        if login.csrf_pattern is not None:
            _check_pattern(table, login.csrf_pattern, login.csrf_url)
        elif login.csrf_url and not login.csrf_cookie:
            raise table.error(
                "csrf_url", "needs csrf_cookie (the cookie the page sets) or csrf_pattern"
            )
    views_table = root.table("views")
    views = []
    # A value extracted in one view is the session's: later views of the same user use it.
    session = {
        key
        for name in views_table
        for item in (views_table.table(name).raw("requests", []) or [])
        if isinstance(item, dict) and isinstance(item.get("extract"), dict)
        for key in item["extract"]
    }
    for name in views_table:
        table = views_table.table(name)
        table.check_keys({"weight", "think", "window_days", "requests", "next"})
        think = table.number_list("think", [2.0, 8.0])
        if len(think) != 2 or not 0 <= think[0] <= think[1]:
            raise table.error("think", "expected [min, max] seconds")
        raw = table.raw("requests")
        if not isinstance(raw, list) or not raw or not all(isinstance(r, dict) for r in raw):
            raise table.error("requests", "expected one or more [[views.NAME.requests]]")
        requests = []
        known = set(FLEET_PLACEHOLDERS) | set(sources) | session
        for i, item in enumerate(raw):
            spec = _request(Table(item, table.source, f"{table.path}.requests[{i}]"))
            for field in ("url", "body"):
                unknown = spec.placeholders(field) - known
                if unknown:
                    raise ConfigError(
                        f"{table.source}: {table.path}.requests[{i}].{field}",
                        f'unknown placeholder "{{{sorted(unknown)[0]}}}"'
                        + (" (write literal braces as {{ and }})" if field == "body" else ""),
                    )
            known |= set(spec.extract)
            requests.append(spec)
        following = table.table("next", required=False)
        for other in following:
            if other not in views_table:
                raise following.error(other, f'no view "{other}" in the map')
        views.append(
            View(
                name,
                table.number("weight", 1.0, min=0.0),
                (think[0], think[1]),
                table.number("window_days", 7.0, min=0.0),
                tuple(requests),
                tuple((other, following.number(other, min=0.0)) for other in following),
            )
        )
    if not views:
        raise views_table.error(None, "no views")
    return DashboardMap(str(file), login, tuple(views), sources)


def dig(data: Any, path: str) -> Any:
    """``dig(answer, "0.id")``: the value at a dotted path of a JSON answer, or None;
    ``items.*.id`` is every item's ``id`` (a list, empty when there is none; ``*`` twice:
    every item's items' ``id``)."""
    parts = path.split(".")
    for index, part in enumerate(parts):
        if part == "*":
            rest = ".".join(parts[index + 1 :])
            items = data if isinstance(data, list) else []
            found: list[Any] = []
            for item in items:
                value = dig(item, rest) if rest else item
                found += value if isinstance(value, list) else [value]
            return [value for value in found if value is not None and not isinstance(value, list)]
        if isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        elif isinstance(data, dict) and part in data:
            data = data[part]
        else:
            return None
    return data
