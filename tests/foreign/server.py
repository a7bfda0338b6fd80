"""A backend that is not barnstorm's, on another stack: a small Django REST Framework app
over SQLite, instrumented with the OpenTelemetry SDK and its Django and SQLite
instrumentations, as a team's staging would be. Other IDs (UUIDs), other URLs, another
login (``POST /auth/session/`` with ``{"user", "secret"}``, a ``Token`` header).

Its pens endpoint iterates over a queryset without ``prefetch_related``: a query per pen
for its sensors and one per sensor for its last reading (the N+1). Its weather endpoint
calls a service through a client no instrumentation wraps (it stands for a raw socket or
a C driver): that time is in no span.

    python -m tests.foreign.server --port 8765 --database /tmp/f.db --otlp http://127.0.0.1:4318
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import django
from django.conf import settings

USER, SECRET = "barn-manager", "hay-bale-42"
#: the app's logins: the manager sees every site, each vet two of them (per-user data).
LOGINS = {USER: SECRET, "vet-north": "straw-7-north", "vet-south": "straw-9-south"}
SITES_OF = {"vet-north": {"Site 0", "Site 1"}, "vet-south": {"Site 1", "Site 2"}}
#: a login that sees no site at all (an empty listing).
NEWCOMER = ("newcomer", "fresh-hay-1")
LOGINS[NEWCOMER[0]] = NEWCOMER[1]
SITES_OF[NEWCOMER[0]] = set()
SITES, PENS, SENSORS = 3, 6, 4
#: the weather service's answer time (no span covers it).
WEATHER_S = 0.03


def configure(database: Path) -> None:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        SECRET_KEY=secrets.token_hex(16),
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "rest_framework",
            "tests.foreign.apps.ForeignConfig",
        ],
        MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(database)}},
        REST_FRAMEWORK={
            "DEFAULT_AUTHENTICATION_CLASSES": [],
            "DEFAULT_PERMISSION_CLASSES": [],
            "UNAUTHENTICATED_USER": None,
        },
        USE_TZ=True,
    )


#: session token -> the login it belongs to.
TOKENS: dict[str, str] = {}
#: whether the telemetry endpoint takes only provisioned sensors (--strict-devices).
STRICT = {"devices": False}


def _uuid(text: str) -> str | None:
    import uuid

    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


SESSION_COOKIE = "barnsession"


def _user(request: Any) -> str | None:
    """Who is asking: a ``Token`` header (the API's login) or the ``barnsession`` cookie
    (the pages'); None for a stranger."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Token ") and header.removeprefix("Token ") in TOKENS:
        return TOKENS[header.removeprefix("Token ")]
    return TOKENS.get(request.COOKIES.get(SESSION_COOKIE, ""))


def _authorised(request: Any) -> bool:
    return _user(request) is not None


def _sees(request: Any, title: str) -> bool:
    """Whether the login asking may see the site titled ``title``."""
    user = _user(request)
    return user is not None and (user not in SITES_OF or title in SITES_OF[user])


def _signed_in(user: Any, secret: Any) -> str | None:
    """A new session token for a right login (recorded in the sign-ins), else None."""
    from tests.foreign.models import SignIn

    if not isinstance(user, str) or LOGINS.get(user) != secret:
        return None
    token = secrets.token_urlsafe(16)
    TOKENS[token] = user
    SignIn.objects.create(user=user, at=time.time())
    return token


def _views() -> list[Any]:
    from django.urls import path
    from rest_framework.decorators import api_view
    from rest_framework.response import Response

    from tests.foreign.models import Pen, Site, Upload

    @api_view(["POST"])
    def session(request: Any) -> Response:
        data = request.data if isinstance(request.data, dict) else {}
        token = _signed_in(data.get("user"), data.get("secret"))
        if token is None:
            return Response({"detail": "who are you?"}, status=401)
        return Response({"session": {"access": token}})

    @api_view(["GET"])
    def sites(request: Any) -> Response:
        if not _authorised(request):
            return Response({"detail": "login first"}, status=401)
        found = [
            {"uuid": str(s.id), "title": s.title}
            for s in Site.objects.order_by("title")
            if _sees(request, s.title)
        ]
        return Response({"count": len(found), "items": found})

    @api_view(["GET"])
    def pens(request: Any, site: str) -> Response:
        if not _authorised(request):
            return Response({"detail": "login first"}, status=401)
        title = Site.objects.filter(id=site).values_list("title", flat=True).first()
        if title is None:
            return Response({"detail": "no such site"}, status=404)
        if not _sees(request, title):
            return Response({"detail": "not your site"}, status=403)
        answer = []
        for pen in Pen.objects.filter(site_id=site).order_by("label"):  # no prefetch_related
            sensors = []
            for sensor in pen.sensors.all():  # a query per pen
                last = sensor.readings.order_by("-at").first()  # and one per sensor
                sensors.append(
                    {
                        "uuid": str(sensor.id),
                        "kind": sensor.kind,
                        "last": last.value if last else None,
                    }
                )
            answer.append({"uuid": str(pen.id), "label": pen.label, "sensors": sensors})
        return Response({"pens": answer})

    @api_view(["GET"])
    def weather(request: Any, site: str) -> Response:
        if not _authorised(request):
            return Response({"detail": "login first"}, status=401)
        title = Site.objects.filter(id=site).values_list("title", flat=True).first()
        if title is None:
            return Response({"detail": "no such site"}, status=404)
        if not _sees(request, title):
            return Response({"detail": "not your site"}, status=403)
        time.sleep(WEATHER_S)  # the weather service, through a client no span wraps
        return Response({"site": title, "outside_c": 4.5})

    @api_view(["POST"])
    def telemetry(request: Any) -> Response:
        """Devices post here; with STRICT_DEVICES, only sensors the app provisioned."""
        data = request.data
        if STRICT["devices"]:
            from tests.foreign.models import Sensor

            sensor = data.get("device_id") if isinstance(data, dict) else None
            if not isinstance(sensor, str) or not Sensor.objects.filter(id=_uuid(sensor)).exists():
                return Response({"detail": "unknown device"}, status=422)
        Upload.objects.create(received=time.time(), body=json.dumps(data)[:2000])
        return Response({"ok": True}, status=202)

    # The pages' side: a cookie login behind Django's own CSRF protection (plain Django
    # views: the CSRF middleware checks every POST, as on a Django site).
    from django.http import HttpResponse, JsonResponse
    from django.views.decorators.csrf import ensure_csrf_cookie

    @ensure_csrf_cookie
    def csrf_page(request: Any) -> HttpResponse:
        return JsonResponse({"ready": True})

    def form_page(request: Any) -> HttpResponse:
        """A sign-in form holding the CSRF token in a hidden input, as Django renders
        ``{% csrf_token %}`` (the token masked: it differs from the cookie's value)."""
        from django.middleware.csrf import get_token

        token = get_token(request)
        return HttpResponse(
            '<form method="post"><input type="hidden" name="csrfmiddlewaretoken" '
            f'value="{token}"><input name="user"><input name="secret"></form>'
        )

    def cookie_login(request: Any) -> HttpResponse:
        if request.method != "POST":
            return JsonResponse({"detail": "POST"}, status=405)
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        token = _signed_in(data.get("user"), data.get("secret"))
        if token is None:
            return JsonResponse({"detail": "who are you?"}, status=401)
        answer = JsonResponse({"welcome": data["user"]})
        answer.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Lax")
        return answer

    def acknowledge(request: Any, site: str) -> HttpResponse:
        if request.method != "POST":
            return JsonResponse({"detail": "POST"}, status=405)
        if not _authorised(request):
            return JsonResponse({"detail": "login first"}, status=401)
        title = Site.objects.filter(id=site).values_list("title", flat=True).first()
        if title is None:
            return JsonResponse({"detail": "no such site"}, status=404)
        if not _sees(request, title):
            return JsonResponse({"detail": "not your site"}, status=403)
        return JsonResponse({"acknowledged": str(site)})

    from tests.foreign.pages import page_views

    return [
        *page_views(_authorised),
        path("accounts/csrf/", csrf_page),
        path("accounts/form/", form_page),
        path("accounts/login/", cookie_login),
        path("v2/sites/<uuid:site>/ack/", acknowledge),
        path("auth/session/", session),
        path("v2/sites/", sites),
        path("v2/sites/<uuid:site>/pens/", pens),
        path("v2/sites/<uuid:site>/weather/", weather),
        path("v2/telemetry/", telemetry),
    ]


urlpatterns: list[Any] = []


def seed() -> None:
    from django.core.management import call_command

    from tests.foreign.models import Pen, Reading, Sensor, Site

    call_command("migrate", run_syncdb=True, verbosity=0)
    if Site.objects.exists():
        return
    now = time.time()
    for s in range(SITES):
        site = Site.objects.create(title=f"Site {s}")
        for p in range(PENS):
            pen = Pen.objects.create(site=site, label=f"pen {p}")
            for k in range(SENSORS):
                sensor = Sensor.objects.create(pen=pen, kind=("mic", "climate")[k % 2])
                Reading.objects.bulk_create(
                    Reading(sensor=sensor, at=now - i * 60, value=float(i)) for i in range(3)
                )


def instrument(otlp: str) -> Any:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "barn-api"}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp.rstrip("/") + "/v1/traces"))
    )
    trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument(tracer_provider=provider)
    SQLite3Instrumentor().instrument(tracer_provider=provider)
    return provider


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database", type=Path, required=True)
    parser.add_argument("--otlp")
    parser.add_argument("--strict-devices", action="store_true")
    args = parser.parse_args(argv)
    STRICT["devices"] = args.strict_devices
    configure(args.database)
    provider = instrument(args.otlp) if args.otlp else None
    django.setup()
    urlpatterns.extend(_views())
    seed()
    import signal
    import socketserver
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from django.core.wsgi import get_wsgi_application

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(socketserver.ThreadingMixIn, WSGIServer):
        daemon_threads = True

    server = make_server(
        "127.0.0.1", args.port, get_wsgi_application(), server_class=Server, handler_class=Quiet
    )
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # flush the spans on the way out
    print(f"listening 127.0.0.1:{args.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        if provider is not None:
            provider.shutdown()
        sys.exit(0)


if __name__ == "__main__":
    main()
