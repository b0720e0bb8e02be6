"""Leases on the web tier: renewals (POST /executions/leases), reconciliation at registration, an executor
saying it shuts down, and results that arrive after the scheduler ended the run on its own verdict."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from executions.choices import ExecutionStatus
from executions.models import TaskExecution
from tests.helpers import assert_ok

LEASES = "/api/v1/executions/leases"
REGISTER = "/api/v1/executors/register"
CALLBACKS_OK = "执行回调处理成功"


@pytest.fixture
def executor(make_executor):
    return make_executor()


@pytest.fixture
def running(executor, make_task, make_execution):
    """``running(attempt=1, **fields)``: a run dispatched to ``executor`` as that attempt."""

    def make(attempt: int = 1, max_retry: int = 0, **fields):
        now = timezone.now()
        fields.setdefault("status", ExecutionStatus.RUNNING)
        fields.setdefault("start_time", now - timedelta(seconds=10))
        fields.setdefault("deadline", now + timedelta(seconds=50))
        fields.setdefault("accept_by", now - timedelta(seconds=5))
        fields.setdefault("lease_until", now + timedelta(seconds=2))
        fields.setdefault("executor", executor)
        return make_execution(task=make_task(max_retry=max_retry), attempt=attempt, **fields)

    return make


def reread(execution) -> TaskExecution:
    return TaskExecution.objects.get(pk=execution.pk)


def test_a_renewal_extends_the_leases_it_names_and_revokes_what_is_not_the_executors(
        signed, executor, running, make_executor):
    mine, superseded, final = running(), running(attempt=3), running(status=ExecutionStatus.TIMEOUT)
    elsewhere = running(executor=make_executor())
    held = [{"execution_id": run.pk, "attempt": attempt}
            for run, attempt in ((mine, 1), (superseded, 2), (final, 1), (elsewhere, 1))]
    data = assert_ok(*signed.post(LEASES, {"executions": held}, executor=executor))
    assert data["renewed"] == [mine.pk]
    assert sorted(data["revoked"]) == sorted([superseded.pk, final.pk, elsewhere.pk])
    assert (data["lease_seconds"], data["renew_seconds"]) == (15.0, 5.0)
    assert reread(mine).lease_until > timezone.now() + timedelta(seconds=14)
    assert reread(superseded).lease_until < timezone.now() + timedelta(seconds=3)


def test_a_renewal_must_be_signed(api, running):
    status, _ = api.post(LEASES, {"executions": []})
    assert status == 401


def test_registering_again_loses_the_runs_it_no_longer_holds_and_stops_those_not_its_own(
        api, executor, running):
    held, forgotten, in_flight = running(), running(max_retry=1), running(accept_by=timezone.now() + timedelta(5))
    finished = running(status=ExecutionStatus.SUCCESS)
    body = {"name": executor.name, "instance_id": executor.instance_id, "base_url": executor.base_url,
            "held_executions": [{"execution_id": held.pk, "attempt": 1}, {"execution_id": finished.pk, "attempt": 1}],
            "held_as_of": timezone.now().isoformat()}
    data = assert_ok(*api.post(REGISTER, body), message="执行器注册成功")  # an admin, or signed by it
    assert data["stop_executions"] == [finished.pk]
    assert reread(held).status == ExecutionStatus.RUNNING
    assert reread(in_flight).status == ExecutionStatus.RUNNING  # its accept-by is still ahead: maybe on its way
    lost = reread(forgotten)
    assert lost.status == ExecutionStatus.FAILED and lost.ended_by_scheduler and "lost: " in lost.logs
    assert TaskExecution.objects.filter(retry_of=lost, status=ExecutionStatus.PENDING).exists()


def test_an_executor_shutting_down_is_offline_at_once_and_online_when_it_registers_again(signed, api, executor):
    assert_ok(*signed.post("/api/v1/executors/shutdown", None, executor=executor), message="执行器已下线")
    executor.refresh_from_db()
    assert (executor.status, executor.status_reason) == ("offline", "shut down by the executor")
    body = {"name": executor.name, "instance_id": executor.instance_id, "base_url": executor.base_url}
    assert assert_ok(*api.post(REGISTER, body), message="执行器注册成功")["status"] == "online"


def late(signed, executor, execution, end):
    return signed.post("/api/v1/executions/callbacks", {"results": [
        {"execution_id": execution.pk, "status": "success", "result": {"n": 1}, "end_time": end.isoformat()}]},
        executor=executor)


def presumed(running, status=ExecutionStatus.TIMEOUT, **fields):
    deadline = timezone.now() - timedelta(seconds=5)
    return running(status=status, deadline=deadline, end_time=deadline, ended_by_scheduler=True, max_retry=1,
                   **fields)


def test_a_result_finished_within_the_deadline_replaces_a_presumed_timeout_and_cancels_the_pending_retry(
        signed, executor, running, make_execution):
    run = presumed(running)
    retry = make_execution(task=run.task, status=ExecutionStatus.PENDING, retry_of=run, retry_count=1,
                           scheduled_time=run.scheduled_time)
    data = assert_ok(*late(signed, executor, run, run.deadline - timedelta(seconds=1)), message=CALLBACKS_OK)
    assert data["results"][0]["outcome"] == "applied"
    run = reread(run)
    assert (run.status, run.result, run.ended_by_scheduler) == ("success", {"n": 1}, False)
    assert "late result: success" in run.logs
    assert reread(retry).status == ExecutionStatus.CANCELLED


def test_a_late_result_after_a_retry_started_is_recorded_on_the_run_not_applied(
        signed, executor, running, make_execution):
    run = presumed(running, status=ExecutionStatus.FAILED)  # lost
    make_execution(task=run.task, status=ExecutionStatus.RUNNING, retry_of=run, retry_count=1,
                   scheduled_time=run.scheduled_time)
    data = assert_ok(*late(signed, executor, run, run.deadline - timedelta(seconds=1)), message=CALLBACKS_OK)
    assert data["results"][0]["outcome"] == "already_final"
    run = reread(run)
    assert run.status == ExecutionStatus.FAILED and "arrived after a retry had started" in run.logs


def test_a_retry_claimed_while_a_late_result_is_weighed_keeps_the_result_off_the_run(
        signed, executor, running, make_execution, monkeypatch):
    """The leader may claim the pending retry between the late result's check and its cancel (the chaos suite
    saw both attempts of one fire succeed): the result is then recorded, not applied."""
    import executions.services

    run = presumed(running, status=ExecutionStatus.FAILED)  # lost
    retry = make_execution(task=run.task, status=ExecutionStatus.PENDING, retry_of=run, retry_count=1,
                           scheduled_time=run.scheduled_time)
    weigh = executions.services.late_result

    def claimed_meanwhile(**facts):
        TaskExecution.objects.filter(pk=retry.pk).update(status=ExecutionStatus.RUNNING)  # the leader's claim
        return weigh(**facts)

    monkeypatch.setattr(executions.services, "late_result", claimed_meanwhile)
    data = assert_ok(*late(signed, executor, run, run.deadline - timedelta(seconds=1)), message=CALLBACKS_OK)

    assert data["results"][0]["outcome"] == "already_final"
    assert reread(retry).status == ExecutionStatus.RUNNING
    run = reread(run)
    assert run.status == ExecutionStatus.FAILED and "arrived after a retry had started" in run.logs


def test_a_result_finished_after_the_deadline_does_not_replace_the_timeout(signed, executor, running):
    run = presumed(running)
    data = assert_ok(*late(signed, executor, run, run.deadline + timedelta(seconds=1)), message=CALLBACKS_OK)
    assert data["results"][0]["outcome"] == "already_final"
    assert reread(run).status == ExecutionStatus.TIMEOUT
