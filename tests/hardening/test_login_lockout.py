"""Admin login brute force (django-axes): failures for one username from one address lock that pair out,
the right password included, until the cool-off passes or an operator resets it. HTTP Basic is covered too
and answers in the API's error body."""

from __future__ import annotations

import base64

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.core.management import call_command
from django.urls import reverse

PASSWORD = "correct-horse-battery-9"
LIMIT = 3


@pytest.fixture(autouse=True)
def lockout_settings(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast: many logins here


@pytest.fixture
def operator(db) -> User:
    return User.objects.create_superuser("operator", "operator@example.com", PASSWORD)


def admin_login(client, password: str, *, address: str = "10.0.0.1"):
    return client.post(reverse("admin:login"), {"username": "operator", "password": password,
                                                "next": reverse("admin:index")}, REMOTE_ADDR=address)


def logged_in(client) -> bool:
    return client.get(reverse("admin:index")).status_code == 200


def fail(client, times: int, *, address: str = "10.0.0.1") -> list[int]:
    return [admin_login(client, "wrong-password", address=address).status_code for _ in range(times)]


def test_failures_up_to_the_limit_lock_the_login_with_a_clear_page(client, operator):
    assert fail(client, LIMIT - 1) == [200] * (LIMIT - 1)  # the login form again, with its error
    response = admin_login(client, "wrong-password")
    assert response.status_code == 429
    page = response.content.decode()
    assert "Login locked" in page and "too many failed logins" in page
    assert int(response["Retry-After"]) == 15 * 60


def test_right_password_is_refused_during_the_lockout(client, operator):
    fail(client, LIMIT)
    response = admin_login(client, PASSWORD)
    assert response.status_code == 429
    assert not logged_in(client)


def test_lockout_is_for_the_username_from_that_address_only(client, operator):
    fail(client, LIMIT, address="10.0.0.1")
    assert admin_login(client, PASSWORD, address="10.0.0.2").status_code == 302
    assert logged_in(client)


def test_login_works_again_after_the_cool_off(client, operator, settings):
    fail(client, LIMIT)
    # The cool-off is measured from the stored attempt time: move it back instead of waiting.
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time
                                 - settings.AXES_COOLOFF_TIME)
    assert admin_login(client, PASSWORD).status_code == 302
    assert logged_in(client)


def test_failures_during_the_lockout_start_the_cool_off_again(client, operator, settings):
    fail(client, LIMIT)
    first_lock = AccessAttempt.objects.get().attempt_time
    AccessAttempt.objects.update(attempt_time=first_lock - settings.AXES_COOLOFF_TIME / 2)
    fail(client, 1)
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time
                                 - settings.AXES_COOLOFF_TIME / 2)
    # A full cool-off has passed since the first lockout, but not since the last failure.
    assert admin_login(client, PASSWORD).status_code == 429


def test_axes_reset_command_lifts_the_lockout(client, operator):
    fail(client, LIMIT)
    call_command("axes_reset", verbosity=0)
    assert admin_login(client, PASSWORD).status_code == 302


def test_a_successful_login_resets_the_failure_count(client, operator):
    fail(client, LIMIT - 1)
    assert admin_login(client, PASSWORD).status_code == 302
    client.logout()
    assert fail(client, LIMIT - 1) == [200] * (LIMIT - 1)
    assert admin_login(client, PASSWORD).status_code == 302


def basic(password: str) -> dict[str, str]:
    token = base64.b64encode(f"operator:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}", "REMOTE_ADDR": "10.0.0.9"}


@pytest.mark.urls("tests.hardening.urls")
def test_http_basic_failures_lock_out_with_the_api_error_body(anon_api, operator):
    api = anon_api
    for _ in range(LIMIT - 1):
        status, body = api.get("/api/hardening-basic", **basic("wrong-password"))
        assert status == 401
    status, body = api.get("/api/hardening-basic", **basic("wrong-password"))
    assert status == 429
    assert set(body) == {"code", "message", "error", "details", "timestamp", "path"}
    assert body["code"] == 429 and "too many failed logins" in body["error"]
    assert body["details"] == {"retry_after_seconds": 15 * 60}
    assert api.last["Retry-After"] == str(15 * 60)
    # The right password is refused too, in the same shape, until the lockout is lifted.
    status, body = api.get("/api/hardening-basic", **basic(PASSWORD))
    assert status == 429 and body["path"] == "/api/hardening-basic"
    call_command("axes_reset", verbosity=0)
    status, body = api.get("/api/hardening-basic", **basic(PASSWORD))
    assert (status, body) == (200, {"username": "operator"})


def test_test_client_login_without_a_request_still_works(client, operator):
    # Axes cannot attribute a login without a request; LockoutBackend leaves it to ModelBackend.
    assert client.login(username="operator", password=PASSWORD)


def test_the_api_own_basic_authentication_is_locked_out_too(anon_api, operator):
    api = anon_api
    # The real endpoints' authentication (accounts), not the probe view above.
    statuses = [api.get("/api/v1/tasks", **basic("wrong-password"))[0] for _ in range(LIMIT)]
    assert statuses == [401] * (LIMIT - 1) + [429]
    status, body = api.get("/api/v1/tasks", **basic(PASSWORD))
    assert status == 429 and body["code"] == 429 and body["path"] == "/api/v1/tasks"


def test_the_jwt_token_endpoint_is_locked_out_too(anon_api, operator):
    def token(password: str) -> tuple[int, dict]:
        return anon_api.post("/api/v1/auth/token", {"username": "operator", "password": password},
                             REMOTE_ADDR="10.0.0.9")

    assert [token("wrong-password")[0] for _ in range(LIMIT)] == [401] * (LIMIT - 1) + [429]
    status, body = token(PASSWORD)
    assert status == 429 and "too many failed logins" in body["error"]
    call_command("axes_reset", verbosity=0)
    assert token(PASSWORD)[0] == 200
