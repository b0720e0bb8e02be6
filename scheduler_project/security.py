"""Login lockout (django-axes), what error reports hide, and the optional /metrics token.

Settings refer to this module by dotted path only: it imports django-axes, which reads the settings, so the
settings module must not import it.
"""

from __future__ import annotations

import hmac
import re

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_cool_off
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.debug import SafeExceptionReporterFilter

from accounts.authentication import bearer_token
from scheduler_project.errors import error_body


class LockoutBackend(AxesStandaloneBackend):
    """django-axes' check, first in AUTHENTICATION_BACKENDS: a username locked out from the client's address
    is refused before any password is checked, a correct one included.

    Axes refuses ``authenticate()`` calls without a request (it cannot tell who is asking). Every login a
    client can attempt (the admin, HTTP Basic, the JWT token endpoint) passes its request; calls without one
    come from code on the server (Django's test client ``login()``, scripts) and are left to the next backend.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def _flag_django_request(sender, request, **kwargs) -> None:
    """A lockout noticed inside DRF (HTTP Basic, JWT token endpoint) is flagged on DRF's ``Request``, which
    ``AxesMiddleware`` never sees: flag the Django request under it too, so the API answers with the
    lockout (429 in the API's error body) rather than a plain 401."""
    inner = getattr(request, "_request", None)
    if isinstance(inner, HttpRequest):
        inner.axes_locked_out = True
        inner.axes_credentials = getattr(request, "axes_credentials", None)


user_locked_out.connect(_flag_django_request, dispatch_uid="scheduler_project.security.flag_django_request")


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the API's error body under /api/, a page saying what happened elsewhere."""
    cool_off = get_cool_off(request)
    seconds = int(cool_off.total_seconds()) if cool_off else None
    headers = {"Retry-After": str(seconds)} if seconds else {}
    message = "too many failed logins for this username from this address"
    if request.path.startswith("/api/"):
        body = error_body(http_status=429, code=429, path=request.path,
                          error=f"{message}; try again in {_minutes(seconds)}",
                          details={"retry_after_seconds": seconds})
        return JsonResponse(body, status=429, headers=headers, json_dumps_params={"ensure_ascii": False})
    context = {
        **admin.site.each_context(request),
        "title": "Login locked",
        "message": message,
        "wait": _minutes(seconds),
        "failure_limit": settings.AXES_FAILURE_LIMIT,
    }
    response = render(request, "admin/lockout.html", context, status=429)
    for name, value in headers.items():
        response[name] = value
    return response


def _minutes(seconds: int | None) -> str:
    if not seconds:
        return "a while (an administrator can lift the lockout)"
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class SecretsExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's filter, also hiding credentials in request headers (``HTTP_AUTHORIZATION``, the executor
    signature headers) and settings named like them, on error pages and in error reports."""

    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|AUTHORIZATION|CREDENTIAL|SESSION", flags=re.IGNORECASE
    )

    def cleanse_setting(self, key, value):
        """Also the password inside any URL-valued setting (``DATABASE_URL=mysql://user:pw@host/db``)."""
        value = super().cleanse_setting(key, value)
        if isinstance(value, str) and "://" in value:
            value = _URL_PASSWORD.sub(r"\1" + self.cleansed_substitute + "@", value)
        return value


_URL_PASSWORD = re.compile(r"(://[^/:@\s]*:)[^@/\s]*@")


def metrics_token_accepted(request: HttpRequest) -> bool:
    """Whether ``/metrics`` may answer: always when METRICS_TOKEN is unset (loopback scraping keeps working),
    otherwise only with ``Authorization: Bearer <METRICS_TOKEN>`` (compared in constant time)."""
    expected = settings.METRICS_TOKEN
    if not expected:
        return True
    token = bearer_token(request)
    return token is not None and hmac.compare_digest(token.encode(), expected.encode())


# The console's pages load scripts and styles from our static files only (Django's admin has no inline
# scripts since 4.x; our confirmations are data-confirm attributes read by console/confirm.js), so an
# injected <script> or inline handler never runs there.
CONSOLE_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


class ConsoleContentSecurityPolicy:
    """Middleware: the Content-Security-Policy header on the console's pages (``/admin/``). The API answers
    JSON; its docs pages (Swagger UI, inline start-up script) are left as they are."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith("/admin/"):
            response.setdefault("Content-Security-Policy", CONSOLE_CONTENT_SECURITY_POLICY)
        return response
