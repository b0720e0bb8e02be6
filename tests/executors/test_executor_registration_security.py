"""Registration hands each executor its own signing secret (once, stable, never listed), and refuses executor
URLs the scheduler must never call (link-local and cloud metadata addresses, anything outside an allowlist)."""

from __future__ import annotations

import pytest

from executors.models import Executor
from tests.helpers import assert_error, assert_ok

EXECUTORS = "/api/v1/executors"
REGISTER = f"{EXECUTORS}/register"


def registration(**overrides) -> dict:
    return {"name": "etl", "instance_id": "etl-1", "base_url": "http://127.0.0.1:9090", **overrides}


# --- the secret ------------------------------------------------------------------------------------------------


def test_registration_answers_the_executors_own_secret(api):
    first = assert_ok(*api.post(REGISTER, registration()), http_status=201, message="执行器注册成功")
    second = assert_ok(*api.post(REGISTER, registration(name="other", instance_id="other-1")), http_status=201,
                       message="执行器注册成功")
    assert len(first["secret"]) >= 40 and first["secret"] != second["secret"]
    assert Executor.objects.get(pk=first["id"]).secret == first["secret"]


def test_re_registration_keeps_the_secret(api):
    first = assert_ok(*api.post(REGISTER, registration()), http_status=201, message="执行器注册成功")
    again = assert_ok(*api.post(REGISTER, registration(base_url="http://127.0.0.1:9091")), message="执行器注册成功")
    assert again["secret"] == first["secret"]


def test_the_secret_is_in_no_other_response(api, make_executor, make_task):
    executor = make_executor()
    responses = [
        api.get(EXECUTORS), api.get(EXECUTORS, {"include_tasks": "true"}), api.get(f"{EXECUTORS}/{executor.pk}"),
        api.put(f"{EXECUTORS}/{executor.pk}", {"name": "renamed"}),
        api.put(f"{EXECUTORS}/{executor.pk}/status", {"status": "maintenance"}),
    ]
    for status, body in responses:
        assert status == 200, body
        assert executor.secret not in api.last.content.decode()
        assert "secret" not in str(body)


# --- SSRF guard at registration and update ---------------------------------------------------------------------


@pytest.mark.parametrize(("field", "url"), [
    ("base_url", "http://169.254.169.254"),
    ("base_url", "http://169.254.169.254.:80/latest/meta-data"),
    ("base_url", "http://[fd00:ec2::254]"),
    ("base_url", "http://[::ffff:169.254.169.254]:9090"),
    ("base_url", "http://[fe80::1]:9090"),
    ("health_check_url", "http://169.254.169.254/latest/meta-data/iam/security-credentials/"),
], ids=["metadata-v4", "trailing-dot", "metadata-v6", "v4-mapped", "v6-link-local", "health-url"])
def test_registration_refuses_link_local_and_metadata_addresses(api, fake_dns, field, url):
    error = assert_error(*api.post(REGISTER, registration(**{field: url})), 400, 400)
    assert (error["details"]["field"], error["details"]["constraint"]) == (field, "forbidden_address")
    assert "link-local or cloud metadata" in error["error"]
    assert not Executor.objects.exists()


def test_registration_refuses_a_name_that_resolves_to_the_metadata_address(api, fake_dns):
    fake_dns["innocent.example"] = ["10.0.0.7", "169.254.169.254"]
    error = assert_error(*api.post(REGISTER, registration(base_url="http://innocent.example:9090")), 400, 400)
    assert "innocent.example: 169.254.169.254" in error["error"]


def test_a_name_that_does_not_resolve_yet_is_accepted_and_checked_at_each_request(api, fake_dns):
    data = assert_ok(*api.post(REGISTER, registration(base_url="http://executor-7:9090")), http_status=201,
                     message="执行器注册成功")
    assert data["base_url"] == "http://executor-7:9090"


def test_update_refuses_a_metadata_address_and_changes_nothing(api, make_executor, fake_dns):
    executor = make_executor(base_url="http://127.0.0.1:9000")
    error = assert_error(*api.put(f"{EXECUTORS}/{executor.pk}", {"base_url": "http://169.254.169.254"}), 400, 400)
    assert error["details"]["field"] == "base_url"
    executor.refresh_from_db()
    assert executor.base_url == "http://127.0.0.1:9000"


def test_with_an_allowlist_only_listed_networks_and_hosts_are_accepted(api, fake_dns, settings):
    settings.SCHEDULER_EXECUTOR_ALLOWED_NETWORKS = ["10.0.0.0/8", ".svc.cluster.local", "exec.example"]
    fake_dns.update({"w1.svc.cluster.local": ["192.168.5.5"], "exec.example": ["172.16.0.9"],
                     "elsewhere.example": ["10.2.0.1", "192.168.0.1"]})
    accepted = ["http://10.1.2.3:9090", "http://w1.svc.cluster.local:9090", "http://exec.example"]
    for n, url in enumerate(accepted):
        assert_ok(*api.post(REGISTER, registration(instance_id=f"ok-{n}", base_url=url)), http_status=201,
                  message="执行器注册成功")
    for n, url in enumerate(["http://127.0.0.1:9090", "http://elsewhere.example"]):
        error = assert_error(*api.post(REGISTER, registration(instance_id=f"no-{n}", base_url=url)), 400, 400)
        assert "outside SCHEDULER_EXECUTOR_ALLOWED_NETWORKS" in error["error"]


def test_an_allowlisted_host_still_never_reaches_the_metadata_address(api, fake_dns, settings):
    settings.SCHEDULER_EXECUTOR_ALLOWED_NETWORKS = ["exec.example", "169.254.0.0/16"]
    fake_dns["exec.example"] = ["169.254.169.254"]
    assert_error(*api.post(REGISTER, registration(base_url="http://exec.example")), 400, 400)
    assert_error(*api.post(REGISTER, registration(base_url="http://169.254.169.254")), 400, 400)
