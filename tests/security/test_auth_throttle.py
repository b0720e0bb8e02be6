"""Findings 3 and 5: the failed-authentication throttle believed X-Forwarded-For (a random header let every
attempt through), let 131 of 200 concurrent failures past a 30/min limit (check and record not atomic), and
a flood of logins hashed 200 passwords at once; registration-key guessing was not throttled at all, and a
one-character key passed the deploy check."""

from __future__ import annotations

import secrets
import threading

import pytest
from django.contrib.auth import get_user_model
from django.test import RequestFactory
from rest_framework.exceptions import AuthenticationFailed, Throttled

from accounts.throttling import AuthFailureThrottle, counting_failures
from tests.conftest import Api
from tests.security.conftest import REGISTER, registration

TASKS = "/api/v1/tasks"


@pytest.fixture
def rate_3(settings, monkeypatch):
    """3 failures a minute, in one window: the windows are fixed (``now // 60``), so a test's attempts on the
    real clock would start counting again whenever they straddle a minute (CI saw four 409s, no 429)."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"auth_failure": "3/min"}}
    monkeypatch.setattr(AuthFailureThrottle, "timer", lambda self: 1_000_000 * 60 + 30.0)


def forwarded_for() -> dict[str, str]:
    return {"HTTP_X_FORWARDED_FOR": f"203.0.113.{secrets.randbelow(250) + 1}"}


def test_a_random_x_forwarded_for_does_not_make_a_new_client(db, rate_3):
    bad = Api("Bearer dts_abcdefgh_wrong")
    statuses = [bad.get(TASKS, **forwarded_for())[0] for _ in range(5)]
    assert statuses == [401, 401, 401, 429, 429]


def test_behind_a_trusted_proxy_the_forwarded_client_is_counted(db, rate_3, settings):
    settings.TRUSTED_PROXIES = ["127.0.0.0/8"]
    bad = Api("Bearer dts_abcdefgh_wrong")
    one = {"HTTP_X_FORWARDED_FOR": "198.51.100.7, 127.0.0.5"}
    assert [bad.get(TASKS, **one)[0] for _ in range(4)] == [401, 401, 401, 429]
    assert bad.get(TASKS, HTTP_X_FORWARDED_FOR="198.51.100.8")[0] == 401  # another client behind the proxy


def test_concurrent_failures_never_exceed_the_rate(db, rate_3):
    request = RequestFactory().get(TASKS)
    attempts, checked, throttled = 40, [], []
    all_arrived, release = threading.Semaphore(0), threading.Event()

    def attempt() -> None:
        try:
            with counting_failures(request):
                checked.append(1)
                all_arrived.release()
                release.wait(10)  # every checked attempt is still in flight when the others arrive
                raise AuthenticationFailed("wrong")
        except Throttled:
            throttled.append(1)
            all_arrived.release()
        except AuthenticationFailed:
            pass

    threads = [threading.Thread(target=attempt) for _ in range(attempts)]
    for thread in threads:
        thread.start()
    for _ in range(attempts):
        assert all_arrived.acquire(timeout=10)
    release.set()
    for thread in threads:
        thread.join(10)
    assert (len(checked), len(throttled)) == (3, attempts - 3)


def test_password_checks_beyond_the_cap_are_refused_as_busy(db, settings):
    from accounts.passwords import password_checks

    settings.PASSWORD_CHECK_CONCURRENCY, settings.PASSWORD_CHECK_WAIT_SECONDS = 1, 0.0
    get_user_model().objects.create_user("oncall", password="a-good-password-1")
    held = password_checks.semaphore()
    assert held.acquire(timeout=1)  # a check in progress
    try:
        status, body = Api().post("/api/v1/auth/token", {"username": "oncall", "password": "a-good-password-1"})
    finally:
        held.release()
    assert status == 429 and "being checked" in body["error"]
    assert Api().post("/api/v1/auth/token", {"username": "oncall", "password": "a-good-password-1"})[0] == 200


def test_registration_key_guessing_is_throttled_and_then_even_the_right_key_waits(host, rate_3):
    guesser = Api(f"Bearer {secrets.token_urlsafe(32)}")
    assert [guesser.post(REGISTER, registration())[0] for _ in range(3)] == [401, 401, 401]
    assert host.register(registration())[0] == 429


def test_unproven_re_registrations_count_as_failures(host, victim, rate_3):
    assert [host.register(registration(base_url="http://127.0.0.2:1"))[0] for _ in range(4)] == [409, 409, 409, 429]


def test_a_short_registration_key_fails_the_checks_with_debug_off(settings):
    from django.core.checks import run_checks

    settings.DEBUG, settings.SCHEDULER_REGISTRATION_KEY = False, "k"
    assert [error.id for error in run_checks(tags=["security"])] == ["accounts.E001"]
    settings.SCHEDULER_REGISTRATION_KEY = secrets.token_urlsafe(32)
    assert "accounts.E001" not in [error.id for error in run_checks(tags=["security"])]
