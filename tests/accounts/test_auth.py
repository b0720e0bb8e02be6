"""Authentication and roles on every API endpoint (README "Authentication").

The endpoints are enumerated from the URL conf, so a new endpoint is covered (and must be classified below)
without anyone remembering to add it. The role each one needs is written out here, not derived from the
code under test.
"""

from __future__ import annotations

import base64

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import override_settings
from django.utils import timezone
from drf_spectacular.generators import EndpointEnumerator

from tests.conftest import Api, World
from tests.helpers import assert_error

PUBLIC = {("GET", "/api/v1/health"), ("POST", "/api/v1/auth/token"), ("POST", "/api/v1/auth/token/refresh")}
# Executor -> server messages: accepted only with the dispatched executor's signature (executors.channel).
SIGNED_BY_EXECUTOR = {
    ("POST", "/api/v1/executions/{pk}/callback"),
    ("POST", "/api/v1/executions/callbacks"),
    ("POST", "/api/v1/executions/{pk}/logs"),
    ("POST", "/api/v1/executions/{pk}/progress"),
    ("POST", "/api/v1/executions/leases"),
    ("POST", "/api/v1/executors/shutdown"),
}
OPERATOR = {
    ("POST", "/api/v1/tasks/{pk}/trigger"),
    ("POST", "/api/v1/tasks/{pk}/pause"),
    ("POST", "/api/v1/tasks/{pk}/resume"),
    ("POST", "/api/v1/tasks/{pk}/backfill"),
    ("POST", "/api/v1/executions/{pk}/stop"),
    ("POST", "/api/v1/workflows/{pk}/trigger"),
    ("POST", "/api/v1/workflow-runs/{pk}/cancel"),
    ("POST", "/api/v1/workflow-runs/{pk}/rerun"),
}
REGISTER = ("POST", "/api/v1/executors/register")
REGISTRATION_KEY = "registration-key-for-tests-0123456789"
PASSWORD = "a-Password-for-tests-9"  # noqa: S105 - test users only


def _api_endpoints() -> list[tuple[str, str]]:
    endpoints = {(method, path) for path, _regex, method, _view in EndpointEnumerator().get_api_endpoints()
                 if path.startswith("/api/v1/")}
    return sorted(endpoints, key=lambda endpoint: (endpoint[1], endpoint[0]))


ENDPOINTS = _api_endpoints()
GUARDED = [endpoint for endpoint in ENDPOINTS if endpoint not in PUBLIC]
WITH_ROLES = [endpoint for endpoint in GUARDED if endpoint not in SIGNED_BY_EXECUTOR]
READS = [endpoint for endpoint in WITH_ROLES if endpoint[0] == "GET"]
WRITES = [endpoint for endpoint in WITH_ROLES if endpoint[0] != "GET"]
ADMIN_WRITES = [endpoint for endpoint in WRITES if endpoint not in OPERATOR and endpoint != REGISTER]


def _ids(endpoints) -> list[str]:
    return [f"{method} {path.removeprefix('/api/v1')}" for method, path in endpoints]


@pytest.fixture
def many_failures_allowed(settings):
    """The sweeps below send dozens of bad credentials from one address: not what the throttle is tested on."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"auth_failure": "10000/min"}}


@pytest.fixture
def make_user(db):
    def make(username: str, *roles: str, **fields) -> object:
        user = get_user_model().objects.create_user(username, password=PASSWORD, **fields)
        user.groups.set([Group.objects.get_or_create(name=role)[0] for role in roles])
        return user

    return make


def filled(world: World, template: str) -> str:
    """A URL-conf path (``{pk}``, ``{executor_id}``) with the world's ids."""
    owner = ("{task}" if template.startswith("/api/v1/tasks") else
             "{executor}" if template.startswith("/api/v1/executors") else
             "{workflow}" if template.startswith("/api/v1/workflows") else
             "{workflow_run}" if template.startswith("/api/v1/workflow-runs") else
             "{calendar}" if template.startswith("/api/v1/calendars") else
             "{channel}" if template.startswith("/api/v1/alerts/channels") else
             "{rule}" if template.startswith("/api/v1/alerts/rules") else
             "{incident}" if template.startswith("/api/v1/alerts/incidents") else "{execution}")
    return world.path(template.replace("{pk}", owner).replace("{executor_id}", "{executor}"))


def call(api: Api, world: World, endpoint: tuple[str, str]) -> tuple[int, object]:
    method, template = endpoint
    if method in ("POST", "PUT"):
        return api.request(method, filled(world, template), {})
    return api.request(method, filled(world, template))


def assert_unauthenticated(api: Api, status: int, body) -> None:
    assert_error(status, body, 401)
    assert api.last["WWW-Authenticate"].startswith(("Bearer", "HMAC")), api.last.headers


def test_the_url_conf_has_the_endpoints_classified_here():
    """Guards the enumeration itself: an empty or partial list would make every sweep pass vacuously."""
    assert len(ENDPOINTS) >= 30
    assert set(PUBLIC) | set(SIGNED_BY_EXECUTOR) | set(OPERATOR) | {REGISTER} <= set(ENDPOINTS)


# --- 401 --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", GUARDED, ids=_ids(GUARDED))
def test_every_endpoint_but_health_answers_401_without_credentials(anon_api, world, endpoint, many_failures_allowed):
    status, body = call(anon_api, world, endpoint)
    assert_unauthenticated(anon_api, status, body)


@pytest.mark.parametrize("endpoint", GUARDED, ids=_ids(GUARDED))
def test_every_endpoint_answers_401_to_an_unknown_or_revoked_key(world, endpoint, api_as, many_failures_allowed):
    from accounts.services import api_key_revoke

    revoked = api_as("admin")
    api_key_revoke(prefix=revoked.authorization.removeprefix("Bearer "), now=timezone.now())
    for client in (Api("Bearer dts_abcdefgh_not-a-real-secret"), revoked, Api("Bearer not-even-a-jwt")):
        status, body = call(client, world, endpoint)
        assert_unauthenticated(client, status, body)


def test_health_needs_no_credentials_and_ignores_bad_ones(anon_api):
    assert anon_api.get("/api/v1/health")[0] == 200
    assert Api("Bearer dts_abcdefgh_wrong").get("/api/v1/health")[0] == 200


def test_schema_and_docs_stay_public_whatever_credentials_are_sent(db):
    for client in (Api(), Api("Bearer dts_abcdefgh_wrong")):
        assert client.client.get("/api/schema/").status_code == 200
        assert client.client.get("/api/docs/").status_code == 200


# --- roles ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", READS, ids=_ids(READS))
def test_a_viewer_reads_everything(api_as, world, endpoint):
    status, body = call(api_as("viewer"), world, endpoint)
    assert status == 200, body


@pytest.mark.parametrize("endpoint", WRITES, ids=_ids(WRITES))
def test_a_viewer_is_refused_every_write_with_403(api_as, world, endpoint):
    status, body = call(api_as("viewer"), world, endpoint)
    error = assert_error(status, body, 403)
    assert "viewer" in error["error"]


@pytest.mark.parametrize("endpoint", ADMIN_WRITES, ids=_ids(ADMIN_WRITES))
def test_an_operator_cannot_create_delete_or_change_tasks_nor_manage_executors(api_as, world, endpoint):
    status, body = call(api_as("operator"), world, endpoint)
    assert_error(status, body, 403)


def test_an_operator_triggers_pauses_resumes_and_stops(api_as, world):
    operator = api_as("operator")
    status, body = operator.post(f"/api/v1/tasks/{world.task}/trigger", {})
    assert status == 200, body
    assert operator.post(f"/api/v1/tasks/{world.task}/pause")[1]["data"]["current_status"] == "paused"
    assert operator.post(f"/api/v1/tasks/{world.task}/resume")[1]["data"]["current_status"] == "active"
    status, body = operator.post(f"/api/v1/executions/{world.execution}/stop")
    assert status == 200 and body["data"]["current_status"] == "cancelled", body


@pytest.mark.parametrize("endpoint", WITH_ROLES, ids=_ids(WITH_ROLES))
def test_an_admin_may_call_everything(api, world, endpoint):
    status, body = call(api, world, endpoint)
    assert status not in (401, 403), body


@pytest.mark.parametrize("endpoint", [e for e in WITH_ROLES if e != REGISTER],
                         ids=_ids([e for e in WITH_ROLES if e != REGISTER]))
def test_the_executor_role_only_registers(api_as, world, endpoint):
    status, body = call(api_as("executor"), world, endpoint)
    assert_error(status, body, 403)


REGISTRATION = {"name": "worker", "instance_id": "worker-1", "base_url": "http://127.0.0.1:9090"}


def test_the_executor_role_registers_an_executor(api_as):
    status, body = api_as("executor").post("/api/v1/executors/register", REGISTRATION)
    assert status == 201, body


@override_settings(SCHEDULER_REGISTRATION_KEY=REGISTRATION_KEY)
def test_the_registration_key_registers_an_executor(anon_api):
    status, body = Api(f"Bearer {REGISTRATION_KEY}").post("/api/v1/executors/register", REGISTRATION)
    assert status == 201, body


@override_settings(SCHEDULER_REGISTRATION_KEY=REGISTRATION_KEY)
@pytest.mark.parametrize("endpoint", [e for e in WITH_ROLES if e != REGISTER],
                         ids=_ids([e for e in WITH_ROLES if e != REGISTER]))
def test_the_registration_key_is_refused_everywhere_else(world, endpoint):
    client = Api(f"Bearer {REGISTRATION_KEY}")
    status, body = call(client, world, endpoint)
    error = assert_error(status, body, 403)
    assert "registration key" in error["error"]


@override_settings(SCHEDULER_REGISTRATION_KEY="")
def test_an_empty_registration_key_setting_accepts_no_key(db, many_failures_allowed):
    for presented in ("", "Bearer ", "Bearer anything"):
        client = Api(presented)
        status, body = client.post("/api/v1/executors/register", REGISTRATION)
        assert_error(status, body, 401)


@override_settings(SCHEDULER_REGISTRATION_KEY=REGISTRATION_KEY)
def test_a_wrong_registration_key_is_401(db):
    status, body = Api(f"Bearer {REGISTRATION_KEY}x").post("/api/v1/executors/register", REGISTRATION)
    assert_error(status, body, 401)


def test_migrate_creates_a_group_per_role(db):
    assert set(Group.objects.values_list("name", flat=True)) >= {"viewer", "operator", "admin", "executor"}


def test_users_get_roles_from_groups_and_superusers_are_admins(make_user, world):
    def basic(user) -> Api:
        return Api("Basic " + base64.b64encode(f"{user.username}:{PASSWORD}".encode()).decode())

    no_role = basic(make_user("nobody"))
    assert_error(*no_role.get("/api/v1/tasks"), 403)
    viewer = basic(make_user("watcher", "viewer"))
    assert viewer.get("/api/v1/tasks")[0] == 200
    assert_error(*viewer.post(f"/api/v1/tasks/{world.task}/pause"), 403)
    operator = basic(make_user("oncall", "operator"))
    assert operator.post(f"/api/v1/tasks/{world.task}/pause")[0] == 200
    assert_error(*operator.delete(f"/api/v1/tasks/{world.task}"), 403)
    superuser = basic(get_user_model().objects.create_superuser("root", password=PASSWORD))
    assert superuser.delete(f"/api/v1/tasks/{world.task}")[0] == 200


# --- credentials ------------------------------------------------------------------------------------------------


def test_basic_auth_with_a_wrong_password_is_401(make_user):
    make_user("watcher", "viewer")
    client = Api("Basic " + base64.b64encode(b"watcher:wrong").decode())
    status, body = client.get("/api/v1/tasks")
    assert_error(status, body, 401)


def test_jwt_obtain_use_and_refresh(make_user, anon_api, world):
    make_user("oncall", "operator")
    status, body = anon_api.post("/api/v1/auth/token", {"username": "oncall", "password": PASSWORD})
    assert status == 200 and body["code"] == 200, body
    tokens = body["data"]
    client = Api(f"Bearer {tokens['access']}")
    assert client.post(f"/api/v1/tasks/{world.task}/pause")[0] == 200
    assert_error(*client.post("/api/v1/tasks", {"name": "x", "cron_expression": "0 * * * * *"}), 403)

    status, body = anon_api.post("/api/v1/auth/token/refresh", {"refresh": tokens["refresh"]})
    assert status == 200, body
    assert Api(f"Bearer {body['data']['access']}").get("/api/v1/tasks")[0] == 200


def test_jwt_with_a_wrong_password_or_a_forged_token_is_401(make_user, anon_api):
    make_user("oncall", "operator")
    status, body = anon_api.post("/api/v1/auth/token", {"username": "oncall", "password": "wrong"})
    assert_error(status, body, 401)
    status, body = Api("Bearer eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoxfQ.c2lnbmF0dXJl").get("/api/v1/tasks")
    assert_error(status, body, 401)
    status, body = anon_api.post("/api/v1/auth/token/refresh", {"refresh": "not-a-token"})
    assert_error(status, body, 401)


def test_a_logged_in_user_browses_the_api_with_the_session(make_user, world):
    user = make_user("watcher", "viewer")
    client = Api()
    client.client.force_login(user)
    assert client.get("/api/v1/tasks")[0] == 200
    assert_error(*client.post(f"/api/v1/tasks/{world.task}/pause"), 403)


def test_session_writes_need_the_csrf_token(make_user, world):
    from rest_framework.test import APIClient

    client = Api()
    client.client = APIClient(enforce_csrf_checks=True)
    client.client.force_login(make_user("oncall", "operator"))
    status, body = client.post(f"/api/v1/tasks/{world.task}/pause")
    error = assert_error(status, body, 403)
    assert "CSRF" in error["error"]


def test_a_key_of_a_deactivated_user_is_401(make_api_key, make_user, many_failures_allowed):
    user = make_user("leaver", "admin")
    client = Api(f"Bearer {make_api_key('admin', username='leaver')}")
    assert client.get("/api/v1/tasks")[0] == 200
    user.is_active = False
    user.save()
    assert_error(*client.get("/api/v1/tasks"), 401)


# --- throttling -------------------------------------------------------------------------------------------------


def test_failed_authentications_from_one_address_are_throttled(settings, api, monkeypatch):
    from accounts.throttling import AuthFailureThrottle

    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"auth_failure": "3/min"}}
    clock = [1000.0]
    monkeypatch.setattr(AuthFailureThrottle, "timer", lambda self: clock[0])
    bad = Api("Bearer dts_abcdefgh_wrong")
    for _ in range(3):
        assert_error(*bad.get("/api/v1/tasks"), 401)
    status, body = bad.get("/api/v1/tasks")
    assert_error(status, body, 429)
    assert int(bad.last["Retry-After"]) > 0
    # The address is refused whatever it sends now, a valid key included, until the window has passed.
    assert_error(*api.get("/api/v1/tasks"), 429)
    clock[0] += 61
    assert api.get("/api/v1/tasks")[0] == 200


def test_missing_credentials_and_successes_are_not_counted(settings, api, anon_api):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"auth_failure": "2/min"}}
    for _ in range(5):
        assert anon_api.get("/api/v1/tasks")[0] == 401
        assert api.get("/api/v1/tasks")[0] == 200


def test_failed_token_requests_count_too(settings, make_user, anon_api, monkeypatch):
    from accounts.throttling import AuthFailureThrottle

    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"auth_failure": "2/min"}}
    monkeypatch.setattr(AuthFailureThrottle, "timer", lambda self: 1000.0)  # one fixed window, not the clock's
    make_user("oncall", "operator")
    wrong = {"username": "oncall", "password": "wrong"}
    assert [anon_api.post("/api/v1/auth/token", wrong)[0] for _ in range(3)] == [401, 401, 429]
