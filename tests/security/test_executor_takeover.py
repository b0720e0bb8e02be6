"""Finding 1 (critical): with only the shared registration key (or an executor-role key), re-registering an
existing executor's instance_id handed over the executor: its id, its signing secret, and its base_url
rewritten to the attacker's. Re-registration now needs proof of that executor's secret (the request signed
with it) or an admin; an admin's offline/maintenance/rotate/revoke/delete sticks until an admin lifts it."""

from __future__ import annotations

import json

import pytest

from executors.models import Executor
from tests.conftest import Api
from tests.security.conftest import REGISTER, Registrar, registration, signed_meta

ATTACKER_URL = "http://127.0.0.2:6666"


def refused_without_leak(status: int, body: dict, victim: dict) -> None:
    assert status == 409, body
    text = json.dumps(body)
    assert victim["secret"] not in text and victim["id"] not in text and '"etl"' not in text
    assert body["code"] == 20002


def test_the_shared_key_cannot_take_over_a_registered_executor(host, victim):
    status, body = host.register(registration(base_url=ATTACKER_URL))
    refused_without_leak(status, body, victim)
    executor = Executor.objects.get(pk=victim["id"])
    assert executor.base_url == "http://127.0.0.1:9090" and executor.secret == victim["secret"]


def test_an_executor_role_key_cannot_take_over_a_registered_executor(victim, make_api_key):
    status, body = Registrar(f"Bearer {make_api_key('executor')}").register(registration(base_url=ATTACKER_URL))
    refused_without_leak(status, body, victim)


def test_a_wrong_name_reveals_neither_the_owners_name_nor_its_id(host, victim):
    status, body = host.register(registration(name="someone-else"))
    refused_without_leak(status, body, victim)


def test_the_executor_proving_its_secret_re_registers_in_place(host, victim):
    status, body = host.register(registration(base_url="http://127.0.0.1:9091"), secret=victim["secret"],
                                 executor_id=victim["id"])
    assert status == 200, body
    assert (body["data"]["id"], body["data"]["secret"]) == (victim["id"], victim["secret"])
    assert Executor.objects.get(pk=victim["id"]).base_url == "http://127.0.0.1:9091"


def test_a_signature_by_another_executor_is_no_proof(host, victim):
    own = host.register(registration(name="mine", instance_id="mine-1"))[1]["data"]
    status, body = host.register(registration(base_url=ATTACKER_URL), secret=own["secret"], executor_id=own["id"])
    refused_without_leak(status, body, victim)


def test_a_guessed_secret_is_no_proof(host, victim):
    status, body = host.register(registration(base_url=ATTACKER_URL), secret="guess" * 10, executor_id=victim["id"])
    refused_without_leak(status, body, victim)


def test_a_replayed_signed_registration_is_refused(host, victim):
    raw = json.dumps(registration(base_url="http://127.0.0.1:9091"))
    meta = signed_meta(victim["secret"], victim["id"], raw)
    assert host.request("POST", REGISTER, raw=raw, **meta)[0] == 200
    status, body = host.request("POST", REGISTER, raw=raw, **meta)
    refused_without_leak(status, body, victim)


def test_an_admin_may_re_register_an_executor(victim, admin_registrar):
    status, body = admin_registrar.register(registration(base_url="http://127.0.0.1:9092"))
    assert status == 200 and body["data"]["secret"] == victim["secret"]


@pytest.mark.parametrize("status_name", ["offline", "maintenance"])
def test_an_admins_status_sticks_through_re_registration(host, victim, api, status_name):
    assert api.put(f"/api/v1/executors/{victim['id']}/status", {"status": status_name})[0] == 200
    assert host.register(registration(), secret=victim["secret"], executor_id=victim["id"])[0] == 200
    assert Executor.objects.get(pk=victim["id"]).status == status_name


def test_a_rotated_secret_goes_only_to_the_executor_proving_the_old_one(host, victim, api):
    assert api.post(f"/api/v1/executors/{victim['id']}/rotate-secret")[0] == 200
    refused_without_leak(*host.register(registration(base_url=ATTACKER_URL)), victim)
    status, body = host.register(registration(), secret=victim["secret"], executor_id=victim["id"])
    assert status == 200, body
    rotated = body["data"]["secret"]
    assert rotated != victim["secret"] and Executor.objects.get(pk=victim["id"]).secret == rotated
    # The old secret proved possession once; it proves nothing any more.
    refused_without_leak(*host.register(registration(), secret=victim["secret"], executor_id=victim["id"]), victim)
    assert host.register(registration(), secret=rotated, executor_id=victim["id"])[0] == 200


def test_a_revoked_executor_stays_revoked_until_an_admin_lifts_it(host, victim, api, admin_registrar):
    assert api.post(f"/api/v1/executors/{victim['id']}/revoke")[0] == 200
    executor = Executor.objects.get(pk=victim["id"])
    assert executor.status == "offline" and executor.secret != victim["secret"]
    for status, body in (host.register(registration()),
                         host.register(registration(), secret=victim["secret"], executor_id=victim["id"])):
        assert status == 409 and victim["secret"] not in json.dumps(body)
    status, body = admin_registrar.register(registration())
    assert status == 200 and body["data"]["secret"] == executor.secret
    assert host.register(registration(), secret=executor.secret, executor_id=victim["id"])[0] == 200


def test_a_deleted_executor_is_not_recreated_by_the_shared_key(host, victim, api, admin_registrar):
    assert api.delete(f"/api/v1/executors/{victim['id']}")[0] == 200
    status, body = host.register(registration(base_url=ATTACKER_URL))
    assert status == 409, body
    assert not Executor.objects.exists()
    assert admin_registrar.register(registration())[0] == 201


def test_new_executors_are_still_created_with_the_shared_key(host):
    status, body = host.register(registration(name="fresh", instance_id="fresh-1"))
    assert status == 201 and len(body["data"]["secret"]) >= 40


def test_unauthenticated_registration_is_refused(db, victim):
    assert Api().post(REGISTER, registration(base_url=ATTACKER_URL))[0] == 401
