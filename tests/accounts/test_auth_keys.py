"""API keys: stored hashed, last use recorded cheaply, created and revoked by command and in the admin;
tasks record who created them; the OpenAPI schema declares the security schemes."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts import services
from accounts.models import ApiKey
from tests.conftest import Api
from tests.helpers import assert_error


def create_key_by_command(*args: str) -> str:
    out = StringIO()
    call_command("create_api_key", *args, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def test_a_key_is_stored_as_its_hash_with_a_visible_prefix(db):
    api_key, raw = services.api_key_create(name="ci", role="viewer")
    scheme, prefix, secret = raw.split("_", 2)
    assert (scheme, prefix) == ("dts", api_key.prefix) and len(prefix) == 8 and len(secret) >= 40
    stored = ApiKey.objects.get(pk=api_key.pk)
    assert stored.key_hash == services.hash_key(raw) and raw not in stored.key_hash
    assert services.api_key_check(raw) == stored
    assert services.api_key_check(raw[:-1] + ("A" if raw[-1] != "A" else "B")) is None


def test_last_use_is_recorded_at_most_once_a_minute(db, monkeypatch):
    api_key, raw = services.api_key_create(name="ci", role="viewer")
    client = Api(f"Bearer {raw}")
    now = timezone.now()
    monkeypatch.setattr("accounts.authentication.utc_now", lambda: now)
    assert client.get("/api/v1/tasks")[0] == 200
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == now

    later = now + timedelta(seconds=30)
    monkeypatch.setattr("accounts.authentication.utc_now", lambda: later)
    assert client.get("/api/v1/tasks")[0] == 200
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == now  # within the minute: no write

    much_later = now + timedelta(seconds=90)
    monkeypatch.setattr("accounts.authentication.utc_now", lambda: much_later)
    assert client.get("/api/v1/tasks")[0] == 200
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == much_later


def test_create_api_key_prints_the_key_last_and_it_works(db, django_user_model):
    django_user_model.objects.create_user("deployer")
    raw = create_key_by_command("--name", "deploy", "--role", "operator", "--user", "deployer")
    api_key = ApiKey.objects.get(prefix=raw.split("_")[1])
    assert (api_key.name, api_key.role, api_key.user.username) == ("deploy", "operator", "deployer")
    assert Api(f"Bearer {raw}").get("/api/v1/tasks")[0] == 200


def test_create_api_key_refuses_an_unknown_user_or_role(db):
    with pytest.raises(CommandError, match="no user"):
        create_key_by_command("--name", "x", "--role", "viewer", "--user", "ghost")
    with pytest.raises(CommandError):
        create_key_by_command("--name", "x", "--role", "superhero")
    assert not ApiKey.objects.exists()


def test_revoke_api_key_by_prefix(db):
    raw = create_key_by_command("--name", "ci", "--role", "admin")
    client = Api(f"Bearer {raw}")
    assert client.get("/api/v1/tasks")[0] == 200
    call_command("revoke_api_key", raw.split("_")[1], stdout=StringIO())
    assert_error(*client.get("/api/v1/tasks"), 401)
    with pytest.raises(CommandError, match="no API key"):
        call_command("revoke_api_key", "zzzzzzzz", stdout=StringIO())


def test_tasks_record_the_key_or_user_that_created_them(api, make_api_key, django_user_model):
    status, body = api.post("/api/v1/tasks", {"name": "by-key", "cron_expression": "0 * * * * *"})
    assert status == 201, body
    prefix = api.authorization.split("_")[1]
    assert body["data"]["created_by_key"] == prefix and body["data"]["created_by"] is None

    django_user_model.objects.create_superuser("alice", password="a-Password-for-tests-9")
    owned = Api(f"Bearer {make_api_key('admin', username='alice')}")
    status, body = owned.post("/api/v1/tasks", {"name": "by-alice", "cron_expression": "0 * * * * *"})
    assert body["data"]["created_by"] == "alice" and body["data"]["created_by_key"] is not None
    # Read-only: a client cannot claim someone else created it.
    status, body = api.post("/api/v1/tasks", {"name": "x", "cron_expression": "0 * * * * *",
                                              "created_by": "mallory"})
    assert status == 201 and body["data"]["created_by"] is None


# --- the admin ----------------------------------------------------------------------------------------------------


def test_the_admin_shows_a_new_key_once_and_never_its_hash(admin_client):
    response = admin_client.post("/admin/accounts/apikey/add/", {"name": "ci", "role": "viewer", "user": ""},
                                 follow=True)
    assert response.status_code == 200
    api_key = ApiKey.objects.get(name="ci")
    shown = [str(message) for message in response.context["messages"]]
    raw = next(word for text in shown for word in text.split() if word.startswith("dts_"))
    assert services.api_key_check(raw) == api_key
    listing = admin_client.get("/admin/accounts/apikey/").content.decode()
    detail = admin_client.get(f"/admin/accounts/apikey/{api_key.pk}/change/").content.decode()
    for page in (listing, detail):
        assert api_key.key_hash not in page and raw not in page
        assert f"dts_{api_key.prefix}_" in page


def test_the_admin_revokes_selected_keys(admin_client):
    api_key, raw = services.api_key_create(name="ci", role="viewer")
    response = admin_client.post("/admin/accounts/apikey/",
                                 {"action": "revoke", "_selected_action": [api_key.pk]}, follow=True)
    assert "Revoked 1 API key" in response.content.decode()
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is not None
    assert_error(*Api(f"Bearer {raw}").get("/api/v1/tasks"), 401)


# --- OpenAPI ------------------------------------------------------------------------------------------------------


def test_the_schema_declares_the_security_schemes(anon_api):
    import json

    schema = json.loads(anon_api.client.get("/api/schema/?format=json").content)
    schemes = schema["components"]["securitySchemes"]
    assert {"apiKey", "jwtAuth", "basicAuth", "cookieAuth", "registrationKey"} <= set(schemes)
    tasks = schema["paths"]["/api/v1/tasks"]["get"]
    assert {"apiKey": []} in tasks["security"] and {} not in tasks["security"]
    assert {"401", "403"} <= set(tasks["responses"])
    health = schema["paths"]["/api/v1/health"]["get"]
    assert "401" not in health["responses"]


# --- keys found active are trusted for a couple of seconds (issue #8: no lookup per request) ---------------------


@pytest.fixture
def frozen_checks(monkeypatch):
    """The check cache's clock, moved by hand; the cache starts empty."""
    clock = {"now": 1000.0}
    monkeypatch.setattr(services.checked_keys, "timer", lambda: clock["now"])
    services.checked_keys.forget_all()
    return clock


def test_a_key_found_active_is_not_looked_up_again_within_the_window(db, frozen_checks,
                                                                     django_assert_num_queries):
    _, raw = services.api_key_create(name="ci", role="viewer")
    assert services.api_key_check(raw) is not None
    with django_assert_num_queries(0):
        assert services.api_key_check(raw) is not None


def test_a_key_revoked_in_this_process_is_refused_at_once(db, frozen_checks):
    _, raw = services.api_key_create(name="ci", role="viewer")
    client = Api(f"Bearer {raw}")
    assert client.get("/api/v1/tasks")[0] == 200
    services.api_key_revoke(prefix=raw, now=timezone.now())
    assert_error(*client.get("/api/v1/tasks"), 401)


def test_a_key_revoked_by_another_process_is_refused_once_the_window_has_passed(db, frozen_checks):
    api_key, raw = services.api_key_create(name="ci", role="viewer")
    assert services.api_key_check(raw) is not None
    # What another process's revocation looks like here: a changed row, and no signal in this process.
    ApiKey.objects.filter(pk=api_key.pk).update(revoked_at=timezone.now())
    frozen_checks["now"] += services.CheckedKeys.seconds - 0.1
    assert services.api_key_check(raw) is not None
    frozen_checks["now"] += 0.1
    assert services.api_key_check(raw) is None


def test_revoking_in_the_admin_or_deactivating_the_owner_forgets_checked_keys(db, frozen_checks,
                                                                              django_user_model):
    owner = django_user_model.objects.create_user("owner")
    _, owned = services.api_key_create(name="mine", role="viewer", username="owner")
    _, other = services.api_key_create(name="ci", role="viewer")
    assert services.api_key_check(owned) and services.api_key_check(other)
    owner.is_active = False
    owner.save()
    assert services.api_key_check(owned) is None
    services.api_keys_revoke(ApiKey.objects.filter(name="ci"), now=timezone.now())
    assert services.api_key_check(other) is None


def test_an_unknown_key_is_never_remembered(db, frozen_checks):
    _, raw = services.api_key_create(name="ci", role="viewer")
    wrong = raw[:-1] + ("A" if raw[-1] != "A" else "B")
    assert services.api_key_check(wrong) is None
    assert services.hash_key(wrong) not in services.checked_keys._found
