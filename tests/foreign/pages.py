"""The foreign app's dashboard pages, as a browser sees them: a sign-in page behind
Django's CSRF cookie, a list of sites and a site's page with its pens, the weather and a
button that acknowledges the site. Each page is a small HTML document whose script calls
the JSON API (``/accounts/login/``, ``/v2/sites/...``) with the session cookie and, on a
POST, the CSRF token from its cookie in ``X-CSRFToken``: what a browser recording of a
single-page dashboard holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_COOKIE = """
function cookie(name) {
  const found = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
  return found ? decodeURIComponent(found.split("=")[1]) : "";
}
async function post(url, data) {
  return fetch(url, {
    method: "POST",
    headers: {"Content-Type": "application/json", "X-CSRFToken": cookie("csrftoken")},
    body: JSON.stringify(data),
  });
}
"""

_LOGIN = """<!doctype html>
<html><head><title>Barn log-in</title></head><body>
<h1>Barn log-in</h1>
<form id="login">
  <label>User <input name="user" autocomplete="username"></label>
  <label>Secret <input name="secret" type="password" autocomplete="current-password"></label>
  <button type="submit">Sign in</button>
</form>
<p id="status"></p>
<script>
%(cookie)s
document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const answer = await post("/accounts/login/",
                            {user: form.user.value, secret: form.secret.value});
  if (answer.ok) { location.href = "/app/sites/"; }
  else { document.getElementById("status").textContent = "refused: " + answer.status; }
});
</script></body></html>
"""

_SITES = """<!doctype html>
<html><head><title>Sites</title></head><body>
<header><a id="home" href="/app/sites/">Sites</a></header>
<main><h1>Your sites</h1><ul id="sites"></ul></main>
<script>
fetch("/v2/sites/").then((r) => r.json()).then((data) => {
  const list = document.getElementById("sites");
  for (const site of data.items) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = "/app/sites/" + site.uuid + "/";
    link.textContent = site.title;
    item.append(link);
    list.append(item);
  }
  document.body.dataset.ready = "yes";
});
</script></body></html>
"""

_SITE = """<!doctype html>
<html><head><title>Site</title></head><body>
<header><a id="home" href="/app/sites/">Sites</a></header>
<main><h1 id="title">Site</h1><p id="weather"></p><ul id="pens"></ul>
<button id="ack" type="button">Acknowledge</button><p id="acked"></p></main>
<script>
%(cookie)s
const site = location.pathname.split("/")[3];
(async () => {
  const pens = await (await fetch("/v2/sites/" + site + "/pens/")).json();
  const list = document.getElementById("pens");
  for (const pen of pens.pens) {
    const item = document.createElement("li");
    item.textContent = pen.label + ": " + pen.sensors.length + " sensors";
    list.append(item);
  }
  const weather = await (await fetch("/v2/sites/" + site + "/weather/")).json();
  document.getElementById("title").textContent = weather.site;
  document.getElementById("weather").textContent = weather.outside_c + " °C outside";
  document.body.dataset.ready = "yes";
})();
document.getElementById("ack").addEventListener("click", async () => {
  const answer = await post("/v2/sites/" + site + "/ack/", {note: "seen"});
  document.getElementById("acked").textContent = answer.ok ? "acknowledged" : "refused";
});
</script></body></html>
"""


def page_views(authorised: Callable[[Any], bool]) -> list[Any]:
    """The pages' URL patterns (``/app/...``); but the log-in page, each needs a login
    (``authorised(request)``: the server's own check, passed in, since the server runs as
    ``__main__`` and an import of it would be a second copy with no sessions)."""
    from django.http import HttpResponse, HttpResponseRedirect
    from django.urls import path
    from django.views.decorators.csrf import ensure_csrf_cookie

    def html(text: str) -> HttpResponse:
        return HttpResponse(text % {"cookie": _COOKIE}, content_type="text/html; charset=utf-8")

    @ensure_csrf_cookie
    def login(request: Any) -> HttpResponse:
        return html(_LOGIN)

    def sites(request: Any) -> HttpResponse:
        return html(_SITES) if authorised(request) else HttpResponseRedirect("/app/login/")

    def site(request: Any, site: str) -> HttpResponse:
        return html(_SITE) if authorised(request) else HttpResponseRedirect("/app/login/")

    return [
        path("app/login/", login),
        path("app/sites/", sites),
        path("app/sites/<uuid:site>/", site),
    ]
