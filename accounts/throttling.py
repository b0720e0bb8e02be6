"""Failed authentications are counted per client address; past the rate the client is answered 429 before
its credentials are even looked at. DRF's throttles run only after authentication succeeded, so this one
is driven by the authentication classes instead (``counting_failures``).

The counts live in Django's cache: per process with the default local-memory cache. Like any DRF throttle
it slows guessing down; it is not the only defence (keys are 256-bit random, logins are locked by axes).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


class AuthFailureThrottle(SimpleRateThrottle):
    scope = "auth_failure"

    def get_rate(self) -> str | None:
        # Read at call time (not when the class was defined), so settings overrides apply.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view=None) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def allow_request(self, request, view=None) -> bool:
        """Whether the client is under the rate of failures. Unlike DRF's throttles, asking records nothing."""
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request)
        self.now = self.timer()
        self.history = [moment for moment in self.cache.get(self.key, []) if moment > self.now - self.duration]
        return len(self.history) < self.num_requests

    def record_failure(self, request) -> None:
        if self.rate is None:
            return
        self.allow_request(request)
        self.history.insert(0, self.now)
        self.cache.set(self.key, self.history, self.duration)


@contextmanager
def counting_failures(request) -> Iterator[None]:
    """Refuses a client over the failure rate (429), and counts an AuthenticationFailed raised inside."""
    throttle = AuthFailureThrottle()
    if not throttle.allow_request(request):
        raise Throttled(wait=throttle.wait(), detail="too many failed authentication attempts from this address")
    try:
        yield
    except AuthenticationFailed:
        throttle.record_failure(request)
        raise


def record_auth_failure(request) -> None:
    """Counts a refusal that is not an AuthenticationFailed (an unproven executor registration) alike."""
    AuthFailureThrottle().record_failure(request)
