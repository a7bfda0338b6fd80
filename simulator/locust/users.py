"""Dashboard users: people clicking through the dashboards of the simulated fleet.

    locust -f locustfiles/dashboard.py --host http://127.0.0.1:8080

Each user logs in, then opens views chosen by weight (farm list, farm overview, room detail
with a 7-day chart, device detail, alerts and acknowledging one), issuing each view's
requests in sequence as a browser would, and thinks between views. The views come from a
dashboard map (``BARNSTORM_DASHBOARD_MAP``, default ``locustfiles/dashboard_map.toml``);
the farms, rooms and devices from the same fleet the devices publish for
(``BARNSTORM_FARMS``, ``BARNSTORM_SEED``). Every request starts its own trace: a W3C
``traceparent`` whose trace id names the run, the view and the request, and a ``baggage``
naming them (and ``sentry-trace`` with ``BARNSTORM_SENTRY_TRACE=1``), so an APM can split the
backend's time by flow and barnstorm can join the backend's spans to the request.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import time
from http.client import RemoteDisconnected
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from locust import HttpUser, task
from locust.runners import WorkerRunner
from urllib3 import BaseHTTPResponse
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import MaxRetryError, ProtocolError
from urllib3.util.retry import Retry

from simulator.locust.dashboard_map import DashboardMap, View, dig, load_map
from simulator.locust.map_fleet import MapFleet
from simulator.locust.run_report import RETRIED, SENDING
from simulator.locust.traces import TRACE

FLEET = MapFleet.from_environment()
#: users started in this process, for the rows of a CSV of logins.
_STARTED = itertools.count()
MAP: DashboardMap = load_map(
    Path(os.environ["BARNSTORM_DASHBOARD_MAP"])
    if os.environ.get("BARNSTORM_DASHBOARD_MAP")
    else None
)
#: the views by name, for the navigation from one to the next.
VIEWS: dict[str, View] = {view.name: view for view in MAP.views}


#: what a closed reused connection looks like to urllib3: the server hung up before any
#: answer (it had closed an idle keep-alive connection the client still held).
_CLOSED = (RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class BrowserRetry(Retry):
    """One retry, as browsers do it: an idempotent request whose reused connection turns
    out closed by the server is sent once more on a new connection. Each is counted under
    the request's name (the report's ``retried_closed_connection``), never hidden; any
    other failure is the request's own."""

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        cause = error.args[-1] if isinstance(error, ProtocolError) and error.args else error
        retryable = method is not None and self._is_method_retryable(method)
        if not isinstance(cause, _CLOSED) or not retryable:  # not a browser's retry
            raise MaxRetryError(_pool, url or "", error)  # type: ignore[arg-type]
        again = super().increment(method, url, response, error, _pool, _stacktrace)
        RETRIED[SENDING.get() or "(unnamed)"] += 1  # counted only when it is sent again
        return again


def browser_retry() -> BrowserRetry:
    return BrowserRetry(
        total=1, connect=0, read=1, redirect=0, status=0, other=0, raise_on_status=False
    )


class DashboardUser(HttpUser):
    """A person browsing the farm dashboards."""

    weight = 1

    def wait_time(self) -> float:
        return self.next_think

    def on_start(self) -> None:
        self.next_think = 0.0
        self.auth: dict[str, str] = {}
        self.session_id = os.urandom(4).hex()  # in every request's baggage
        #: this user's own values: one of each CSV source's, then what its views extracted
        #: (the farm it opened, then a room of that farm), for its later views.
        self.session: dict[str, Any] = {
            name: random.choice(values) for name, values in MAP.sources.items()
        }
        for adapter in self.client.adapters.values():
            adapter.max_retries = browser_retry()  # type: ignore[attr-defined]
        login = MAP.login
        if login is None:
            return
        if login.csrf_url:  # the page that sets the CSRF cookie, as a browser opens it first
            name = f"GET {login.csrf_url}"
            SENDING.set(name)
            headers = TRACE.headers("login", name, session=self.session_id)
            with self.client.get(
                login.csrf_url, name=name, headers=headers, catch_response=True
            ) as page:
                if login.csrf_pattern is not None:
                    found = re.search(login.csrf_pattern, page.text or "")
                    self.csrf_token = found.group(1) if found else None
                if page.status_code != 200 or self._csrf() is None:
                    missing = "its CSRF token" if login.csrf_pattern else login.csrf_cookie
                    page.failure(f"{name}: status {page.status_code}, no {missing}")
                    return
        SENDING.set(f"{login.method} {login.url}")
        url, body = login.for_user(self._login_row())
        with self.client.request(
            login.method,
            url,
            data=body,
            name=f"{login.method} {login.url}",
            headers={
                "content-type": "application/json",
                **TRACE.headers("login", f"{login.method} {login.url}", session=self.session_id),
                **self._csrf_header(login.method),
            },
            catch_response=True,
        ) as response:
            if not login.token:  # a session cookie, kept by the client, carries the login
                if not 200 <= response.status_code < 300:
                    response.failure(_failure("login", response, (200,)))
                return
            token = dig(response.json(), login.token) if response.status_code == 200 else None
            if token is None:
                response.failure(_failure("login", response, (200,)))
                return
            self.auth = {login.header: f"{login.scheme} {token}".strip()}

    def _login_row(self) -> int:
        """Which row of the map's CSV of logins this user takes: the users of this process
        in turn, interleaved with the other Locust workers' (``--processes N``), so that
        as many users as rows log in as as many people."""
        runner = self.environment.runner
        if not isinstance(runner, WorkerRunner):
            return next(_STARTED)
        workers = getattr(self.environment.parsed_options, "processes", 1)
        if workers == -1:  # --processes -1: one worker per core
            workers = os.cpu_count() or 1
        stride = workers if isinstance(workers, int) and workers > 1 else 1
        return int(runner.worker_index) + stride * next(_STARTED)

    def _csrf(self) -> str | None:
        """The CSRF token: read from the login page, or its cookie's value."""
        login = MAP.login
        if login is not None and login.csrf_pattern is not None:
            return getattr(self, "csrf_token", None)
        if login is None or not login.csrf_cookie:
            return None
        value = self.client.cookies.get(login.csrf_cookie)
        return str(value) if value else None

    def _csrf_header(self, method: str) -> dict[str, str]:
        """The CSRF token, from its cookie, on a request that changes something."""
        login = MAP.login
        if login is None or method in ("GET", "HEAD", "OPTIONS"):
            return {}
        token = self._csrf()
        return {login.csrf_header: token} if token else {}

    @task
    def open_view(self) -> None:
        view = self._next_view()
        self.current = view
        self.browse(view)
        self.next_think = random.uniform(*view.think)

    def _next_view(self) -> View:
        """The view the user opens next: one that followed the current one in the map's
        navigation (``next``), by weight; a first view, or one with nowhere to go, is
        drawn by the views' weights."""
        current = getattr(self, "current", None)
        if current is not None and current.next:
            names, weights = zip(*current.next, strict=True)
            if sum(weights) > 0:
                return VIEWS[random.choices(names, weights=weights)[0]]
        return random.choices(MAP.views, weights=[v.weight for v in MAP.views])[0]

    def browse(self, view: View) -> None:
        values: dict[str, Any] = {**FLEET.values(view.window_days, time.time()), **self.session}
        opening = os.urandom(6).hex()  # this opening of the view, in its requests' baggage
        for spec in view.requests:
            # Each request its own trace (the view is in the trace id and the baggage), so
            # that the backend's spans join the request that caused them.
            headers = {
                **self.auth,
                **TRACE.headers(view.name, spec.name, opening, self.session_id),
                **self._csrf_header(spec.method),
                "content-type": "application/json",
            }
            if any(values.get(name) is None for name in spec.placeholders()):
                return  # nothing to act on (no alert to acknowledge): the view ends here
            url = spec.url.format(**values)
            body = spec.body.format(**values) if spec.body else None
            SENDING.set(spec.name)
            with self.client.request(
                spec.method, url, data=body, name=spec.name, headers=headers, catch_response=True
            ) as response:
                if response.status_code not in spec.expect:
                    response.failure(_failure(spec.name, response, spec.expect))
                    return
                response.success()
                if spec.extract:
                    answer = response.json()
                    for name, path in spec.extract.items():
                        found = dig(answer, path)
                        if isinstance(found, list):  # items.*.id: one of them
                            found = random.choice(found) if found else None
                        values[name] = found
                        if found is None:
                            self.session.pop(name, None)
                        else:
                            self.session[name] = found


def _failure(name: str, response: Any, expected: Any) -> str:
    """Why a request failed: the status and what was expected, or, with no answer at all,
    the error at the root of it, its exception's name and message ("status 0" would lose
    the cause; the request's URL is left out, so that failures group by name)."""
    error = getattr(response, "error", None)
    if not response.status_code and error is not None:
        root = _root(error)
        return f"{name}: no answer: {type(root).__name__}: {root}"
    wanted = ", ".join(map(str, expected))
    return f"{name}: status {response.status_code}, expected {wanted}"


def _root(error: BaseException) -> BaseException:
    """The innermost error a requests/urllib3 error wraps (a reset, a refusal, a timeout)."""
    for _ in range(6):
        inner = getattr(error, "reason", None)
        if not isinstance(inner, BaseException):
            last = error.args[-1] if error.args else None
            inner = last if isinstance(last, BaseException) else None
        if inner is None:
            return error
        error = inner
    return error
