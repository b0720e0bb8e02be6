"""Password checks under a per-process concurrency cap.

A password check is PBKDF2: a fraction of a second of CPU, by design, and Django hashes even for an unknown
username. 200 concurrent bad logins (from as many addresses as the attacker has, so the per-address throttle
does not help) ran 200 hashes at once on 2 cores and stalled every other request for 20-40 s. Here at most
PASSWORD_CHECK_CONCURRENCY checks run at once per process; a login that cannot start one within
PASSWORD_CHECK_WAIT_SECONDS is refused as busy (429 with Retry-After) instead of holding a worker thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.http import HttpResponse
from rest_framework.exceptions import Throttled

BUSY_RETRY_AFTER_SECONDS = 1


class PasswordChecksBusy(Throttled):
    default_detail = "too many logins are being checked right now; try again in a moment"


class _Gate:
    """The process's semaphore, rebuilt when the setting changes (tests override it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._size: int | None = None
        self._semaphore = threading.BoundedSemaphore(1)

    def semaphore(self) -> threading.BoundedSemaphore:
        size = settings.PASSWORD_CHECK_CONCURRENCY
        with self._lock:
            if size != self._size:
                self._size, self._semaphore = size, threading.BoundedSemaphore(size)
            return self._semaphore


password_checks = _Gate()


@contextmanager
def password_check_slot() -> Iterator[None]:
    semaphore = password_checks.semaphore()
    if not semaphore.acquire(timeout=settings.PASSWORD_CHECK_WAIT_SECONDS):
        raise PasswordChecksBusy(wait=BUSY_RETRY_AFTER_SECONDS)
    try:
        yield
    finally:
        semaphore.release()


class CappedModelBackend(ModelBackend):
    """Django's username/password backend, its checks under the cap."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if password is None:
            return None  # nothing to hash: another kind of credentials
        with password_check_slot():
            return super().authenticate(request, username=username, password=password, **kwargs)


class PasswordChecksBusyMiddleware:
    """Outside the API (the console's login form) a busy refusal is a short page, not a server error."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, PasswordChecksBusy):
            return HttpResponse(str(exception.detail), status=429, content_type="text/plain; charset=utf-8",
                                headers={"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)})
        return None
