"""``simulate mixed``'s look at a dashboard map before any load: as one user, log in (the
CSRF page first, where the map has one) and open each listing the map extracts IDs from,
in the order the map needs them, then stop. A login the target refuses, a token or an
extract path that matches nothing in the answer (the product's JSON has another shape),
or a listing that is empty while other views need its IDs stops the run with one line
naming the map's key and what was expected, instead of a run whose users all fail.

Only the login and GET requests with an ``extract`` are sent (a handful): nothing that
changes the product's data.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from simulator.errors import ConfigError
from simulator.locust.dashboard_map import DashboardMap, Login, RequestSpec, View, dig
from simulator.locust.map_fleet import MapFleet

TIMEOUT_S = 15.0


def why_nothing(answer: Any, path: str) -> str | None:
    """Why ``path`` finds nothing in ``answer`` ("no key ..." or "an empty list at ..."),
    or None when it finds a value."""
    data = answer
    walked: list[str] = []
    for part in path.split("."):
        where = ".".join(walked) or "the answer"
        if part == "*" or (isinstance(data, list) and part.isdigit()):
            if not isinstance(data, list):
                return f"{where} is not a list"
            if not data or (part.isdigit() and int(part) >= len(data)):
                return f"an empty list at {where}"
            data = data[0] if part == "*" else data[int(part)]
        elif isinstance(data, dict):
            if part not in data:
                keys = ", ".join(sorted(map(str, data))[:8]) or "none"
                return f'no key "{part}" in {where} (its keys: {keys})'
            data = data[part]
        else:
            return f"{where} is {type(data).__name__}, not an object"
        walked.append(part)
    return None if dig(answer, path) not in (None, []) else "no value there"


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _login(client: httpx.Client, login: Login, source: str) -> dict[str, str]:
    """Log in as the map's first user; the header that carries the token, if any."""
    csrf = None
    if login.csrf_url:
        page = client.get(login.csrf_url)
        if login.csrf_pattern is not None:
            found = re.search(login.csrf_pattern, page.text)
            csrf = found.group(1) if found else None
            if page.status_code != 200 or csrf is None:
                raise ConfigError(
                    f"{source}: login.csrf_pattern",
                    f"matches nothing in GET {login.csrf_url} (status {page.status_code}): "
                    "expected the page that holds the CSRF token",
                )
        elif page.status_code != 200 or not client.cookies.get(login.csrf_cookie or ""):
            raise ConfigError(
                f"{source}: login.csrf_url",
                f"GET {login.csrf_url} answered {page.status_code} with no "
                f"{login.csrf_cookie} cookie: expected the page that sets it",
            )
    url, body = login.for_user(0)
    headers = {"content-type": "application/json"}
    if csrf is None and login.csrf_cookie:
        csrf = client.cookies.get(login.csrf_cookie)
    if csrf:
        headers[login.csrf_header] = csrf
    answer = client.request(login.method, url, content=body, headers=headers)
    if not 200 <= answer.status_code < 300:
        raise ConfigError(
            f"{source}: login",
            f"{login.method} {url} answered {answer.status_code}, expected 2xx: check the "
            "login's url, body and the values of its {env:...} and {csv:...}",
        )
    if not login.token:
        return {}
    reason = why_nothing(_json(answer), login.token)
    if reason:
        raise ConfigError(
            f"{source}: login.token",
            f'"{login.token}" matches nothing in the answer of {login.method} {url}: {reason}',
        )
    token = dig(_json(answer), login.token)
    return {login.header: f"{login.scheme} {token}".strip()}


def _needed_elsewhere(dashboard: DashboardMap, view: View, name: str) -> list[str]:
    """The other views that use the value ``name`` (which they cannot open without it)."""
    return [
        other.name
        for other in dashboard.views
        if other is not view and any(name in spec.placeholders() for spec in other.requests)
    ]


def check_map(dashboard: DashboardMap, host: str, fleet: MapFleet) -> int:
    """Log in and open the map's listings once (see the module's docstring); the number of
    requests sent. A :class:`ConfigError` names the map's key that cannot work, or
    ``--host`` when the dashboards do not answer."""
    try:
        return _check(dashboard, host, fleet)
    except httpx.HTTPError as exc:
        raise ConfigError("--host", f"no answer from {host}: {type(exc).__name__}: {exc}") from None


def _check(dashboard: DashboardMap, host: str, fleet: MapFleet) -> int:
    source = dashboard.source
    values: dict[str, Any] = {name: items[0] for name, items in dashboard.sources.items()}
    sent = 0
    with httpx.Client(base_url=host, timeout=TIMEOUT_S) as client:
        headers = _login(client, dashboard.login, source) if dashboard.login else {}
        sent += 2 if dashboard.login and dashboard.login.csrf_url else 1 if dashboard.login else 0
        pending: list[tuple[View, int, RequestSpec]] = [
            (view, i, spec)
            for view in dashboard.views
            for i, spec in enumerate(view.requests)
            if spec.method == "GET" and spec.extract
        ]
        progressed = True
        while pending and progressed:
            progressed = False
            for item in list(pending):
                view, index, spec = item
                known = {**fleet.values(view.window_days, time.time()), **values}
                if any(known.get(name) in (None, "") for name in spec.placeholders()):
                    continue  # needs a value a later listing gives
                pending.remove(item)
                progressed = True
                where = f"{source}: views.{view.name}.requests[{index}]"
                url = spec.url.format(**known)
                answer = client.get(url, headers=headers)
                sent += 1
                if answer.status_code not in spec.expect:
                    wanted = ", ".join(map(str, spec.expect))
                    raise ConfigError(
                        where, f"GET {url} answered {answer.status_code}, expected {wanted}"
                    )
                data = _json(answer)
                for name, path in spec.extract.items():
                    reason = why_nothing(data, path)
                    found = dig(data, path)
                    if reason is None:
                        values[name] = found[0] if isinstance(found, list) else found
                        continue
                    others = _needed_elsewhere(dashboard, view, name)
                    if reason.startswith("an empty list") and not others:
                        continue  # nothing to act on yet (no alert): the view ends there
                    needs = f"; views {', '.join(others)} need it" if others else ""
                    raise ConfigError(
                        f"{where}.extract.{name}",
                        f'"{path}" matches nothing in the answer of GET {url}: {reason}{needs}',
                    )
    return sent
