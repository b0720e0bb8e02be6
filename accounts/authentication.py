"""The API's authentication classes, tried in the order of REST_FRAMEWORK's DEFAULT_AUTHENTICATION_CLASSES.

``Authorization: Bearer`` carries three kinds of token: API keys (``dts_...``), the executor registration
key, and JWTs. The first two are recognised here first; any other bearer value is left to the JWT class.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt import authentication as jwt_authentication

from accounts import services
from accounts.throttling import counting_failures
from core.clock import utc_now

REALM = "api"


def bearer_token(request) -> str | None:
    parts = authentication.get_authorization_header(request).split()
    if len(parts) != 2 or parts[0].lower() != b"bearer":
        return None
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        return None


class CountsFailures:
    """Mixin for an authentication class: failures count towards the per-address throttle."""

    def authenticate(self, request):
        with counting_failures(request):
            return super().authenticate(request)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer dts_<prefix>_<secret>``. ``request.auth`` is the ApiKey; ``request.user`` its
    owner, or anonymous for a key without one (the key's role is what counts)."""

    def authenticate(self, request):
        token = bearer_token(request)
        if token is None or not services.looks_like_api_key(token):
            return None
        with counting_failures(request):
            api_key = services.api_key_check(token)
            if api_key is None:
                raise AuthenticationFailed("invalid or revoked API key")
        services.api_key_touch(api_key, now=utc_now())
        return api_key.user or AnonymousUser(), api_key

    def authenticate_header(self, request) -> str:
        return f'Bearer realm="{REALM}"'


class RegistrationKey:
    """``request.auth`` when the shared executor registration key was presented."""

    def __repr__(self) -> str:
        return "<registration key>"


REGISTRATION_KEY = RegistrationKey()


class RegistrationKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <SCHEDULER_REGISTRATION_KEY>``; never matches while the setting is empty.
    Accepted only where a view lists the action in ``registration_actions`` (accounts.permissions)."""

    def authenticate(self, request):
        expected = settings.SCHEDULER_REGISTRATION_KEY
        token = bearer_token(request)
        if not expected or token is None or services.looks_like_api_key(token):
            return None
        # Refused (429) once the address is over the failure rate, the right key included; a wrong one is
        # counted by the JWT class next, which it fails too.
        with counting_failures(request):
            matches = hmac.compare_digest(token.encode(), expected.encode())
        return (AnonymousUser(), REGISTRATION_KEY) if matches else None

    def authenticate_header(self, request) -> str:
        return f'Bearer realm="{REALM}"'


class JWTAuthentication(CountsFailures, jwt_authentication.JWTAuthentication):
    """simplejwt's access tokens (``POST /api/v1/auth/token``), failures counted."""


class BasicAuthentication(CountsFailures, authentication.BasicAuthentication):
    """HTTP Basic with a Django user's password (django-axes locks the username after repeated failures)."""
