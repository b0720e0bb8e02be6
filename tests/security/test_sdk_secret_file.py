"""Finding 1, the executor's side: since re-registering needs the executor's own secret, the SDK keeps it in
a file only its user can read, and proves it when it registers again after a restart."""

from __future__ import annotations

import secrets
import stat

import pytest

from executors.models import Executor as ExecutorRow
from scheduler_sdk import Executor


@pytest.fixture
def live_scheduler(live_server, settings):
    settings.SCHEDULER_REGISTRATION_KEY = secrets.token_urlsafe(32)
    settings.SCHEDULER_EXECUTOR_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    return live_server


def start_executor(url: str, registration_key: str, secret_file) -> Executor:
    executor = Executor("etl", "etl-1", url, registration_key=registration_key, secret_file=secret_file,
                        heartbeat_interval=60)
    executor.start()
    return executor


@pytest.mark.django_db(transaction=True)
def test_the_sdk_re_registers_after_a_restart_with_its_stored_secret(live_scheduler, settings, tmp_path):
    secret_file = tmp_path / "state" / "etl-1.json"
    first = start_executor(live_scheduler.url, settings.SCHEDULER_REGISTRATION_KEY, secret_file)
    first.stop(timeout=2)
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert ExecutorRow.objects.get().secret in secret_file.read_text()

    # A new process, as far as the SDK knows.
    again = start_executor(live_scheduler.url, settings.SCHEDULER_REGISTRATION_KEY, secret_file)
    try:
        assert again.registered and again.executor_id == first.executor_id
        assert ExecutorRow.objects.count() == 1
    finally:
        again.stop(timeout=2)


def test_the_secret_file_path_is_a_setting_with_the_instance_id_in_it(monkeypatch, tmp_path):
    from scheduler_sdk.credentials import default_secret_path

    monkeypatch.setenv("SCHEDULER_SECRET_FILE", str(tmp_path / "{instance_id}.secret"))
    assert default_secret_path("etl/1\n") == tmp_path / "etl_1_.secret"
    monkeypatch.delenv("SCHEDULER_SECRET_FILE")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_secret_path("etl-1") == tmp_path / "scheduler-sdk" / "etl-1.json"


@pytest.mark.django_db(transaction=True)
def test_after_a_rotation_the_sdk_proves_its_old_secret_and_stores_the_new_one(live_scheduler, settings, tmp_path):
    from executors.services import executor_rotate_secret

    secret_file = tmp_path / "etl-1.json"
    executor = start_executor(live_scheduler.url, settings.SCHEDULER_REGISTRATION_KEY, secret_file)
    try:
        rotated = executor_rotate_secret(executor_id=executor.executor_id).secret
        executor.register()  # what the SDK does at the first 401 after the rotation
        assert rotated in secret_file.read_text()
        assert ExecutorRow.objects.get().previous_secret == ""  # the old secret proves nothing any more
    finally:
        executor.stop(timeout=2)
