"""Failed authentications are counted per client address; past the rate the client is answered 429 before
its credentials are even looked at. DRF's throttles run only after authentication succeeded, so this one
is driven by the authentication classes instead (``counting_failures``).

Counting is atomic (``cache.add`` then ``cache.incr``): an attempt takes its place in the count *before* its
credentials are checked and gives it back if they were right. So a burst of concurrent attempts cannot all
pass the check before any of them is recorded; at most the rate's number of attempts are ever checked in a
window. The windows are fixed (``now // duration``).

The client is the connection's peer address (``accounts.client_address``): a client cannot choose its own
identity with ``X-Forwarded-For`` unless the peer is a configured trusted proxy.

The counts live in Django's cache: per process with the default local-memory cache. Like any DRF throttle
it slows guessing down; it is not the only defence (keys are 256-bit random, logins are locked by axes).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.cache import cache as default_cache
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from accounts.client_address import client_address


class AuthFailureThrottle:
    """The failures (and attempts in flight) of one client address in the current window."""

    scope = "auth_failure"
    cache = default_cache
    timer = time.time  # swapped by tests

    def __init__(self, request) -> None:
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)  # at call time: settings overrides apply
        self.limit, self.duration = SimpleRateThrottle.parse_rate(None, rate) if rate else (None, None)
        if self.limit is not None:
            now = self.timer()
            window = int(now // self.duration)
            self.key = f"throttle_{self.scope}_{client_address(request)}_{window}"
            self.window_ends = (window + 1) * self.duration
            self.now = now

    def take(self) -> bool:
        """Counts one attempt; whether it is within the rate (checking its credentials may go on)."""
        if self.limit is None:
            return True
        self.cache.add(self.key, 0, self.duration + 1)
        try:
            count = self.cache.incr(self.key)
        except ValueError:  # expired between add and incr: this attempt opens the count
            self.cache.add(self.key, 1, self.duration + 1)
            count = 1
        return count <= self.limit

    def give_back(self) -> None:
        """The attempt succeeded: it was not a failure."""
        if self.limit is not None:
            try:
                self.cache.decr(self.key)
            except ValueError:
                pass  # the window ended meanwhile: nothing to give back

    def wait(self) -> float:
        return max(1.0, self.window_ends - self.now) if self.limit is not None else 0.0


def refuse_if_over_rate(throttle: AuthFailureThrottle) -> None:
    if not throttle.take():
        raise Throttled(wait=throttle.wait(), detail="too many failed authentication attempts from this address")


@contextmanager
def counting_failures(request) -> Iterator[None]:
    """Refuses a client over the failure rate (429); otherwise counts the attempt, and keeps it counted only
    when an AuthenticationFailed is raised inside."""
    throttle = AuthFailureThrottle(request)
    refuse_if_over_rate(throttle)
    try:
        yield
    except AuthenticationFailed:
        raise
    except BaseException:
        throttle.give_back()
        raise
    throttle.give_back()


def record_auth_failure(request) -> None:
    """Counts a refusal that is not an AuthenticationFailed (an unproven executor registration) alike."""
    AuthFailureThrottle(request).take()
