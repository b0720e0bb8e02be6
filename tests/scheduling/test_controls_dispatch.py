"""The dispatch side of the controls: queue and replace modes, backfills under the task's mode and
max_instances, executor labels. Executors are the fake transport of tests.scheduling.fakes."""

from datetime import timedelta

import pytest

from executions.choices import ExecutionStatus
from executions.models import TaskExecution
from executions.services import shards_of, stop_replaced
from scheduling.firing import fire_due
from tasks.models import Task
from tasks.services import task_backfill
from tests.scheduling.conftest import T0
from tests.scheduling.fakes import dispatch, make_dispatcher

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staging_dispatcher(clock, transport):
    instance = make_dispatcher(clock, transport, stage_ahead=timedelta(seconds=2))
    yield instance
    instance.shutdown()


@pytest.mark.parametrize("fields", [{"execution_mode": "queue"}, {"execution_mode": "replace"},
                                    {"load_balance_strategy": "broadcast"}])
def test_runs_decided_when_due_are_never_staged(make_task, make_executor, staging_dispatcher, transport, fields):
    task = make_task(**fields)
    make_executor(tasks=[task])
    fire_due(T0)
    TaskExecution.objects.update(dispatch_after=T0 + timedelta(seconds=1))  # e.g. jittered, or a retry
    staging_dispatcher.dispatch_pending(T0)
    assert staging_dispatcher.next_due() is None
    assert dispatch(staging_dispatcher, T0 + timedelta(seconds=1)) >= 1  # found when due
    assert transport.calls


def finish_running():
    TaskExecution.objects.filter(status=ExecutionStatus.RUNNING).update(status=ExecutionStatus.SUCCESS)


def sent_times(fake):
    return [payload["scheduled_time"] for _, payload in fake.calls]


def test_queue_mode_runs_every_fire_one_at_a_time_in_order(make_task, make_executor, dispatcher, transport):
    task = make_task(execution_mode="queue")
    make_executor(tasks=[task])
    for second in range(3):
        Task.objects.filter(pk=task.pk).update(next_run_time=T0 + timedelta(seconds=second))
        fire_due(T0 + timedelta(seconds=second))
    now = T0 + timedelta(seconds=3)
    for expected in range(1, 4):
        dispatch(dispatcher, now)
        assert len(transport.calls) == expected, "one at a time"
        finish_running()
    assert sent_times(transport) == ["2030-01-01T12:00:00Z", "2030-01-01T12:00:01Z", "2030-01-01T12:00:02Z"]


def test_backfill_runs_wait_for_max_instances_instead_of_skipping(make_task, make_executor, dispatcher, transport):
    task = make_task(cron_expression="0 * * * * *", max_instances=2, next_run_time=T0 + timedelta(days=1))
    make_executor(tasks=[task])
    result = task_backfill(task_id=task.pk, start=T0 - timedelta(minutes=4), end=T0, now=T0)
    assert result.created == 5
    dispatch(dispatcher, T0)
    assert len(transport.calls) == 2
    dispatch(dispatcher, T0)
    assert len(transport.calls) == 2, "max_instances runs at once"
    finish_running()
    dispatch(dispatcher, T0)
    assert sent_times(transport)[:4] == [f"2030-01-01T11:5{m}:00Z" for m in range(6, 10)]  # oldest first


def test_backfill_of_a_sequential_task_runs_one_at_a_time(make_task, make_executor, dispatcher, transport):
    task = make_task(cron_expression="0 * * * * *", execution_mode="sequential", next_run_time=T0 + timedelta(days=1))
    make_executor(tasks=[task])
    task_backfill(task_id=task.pk, start=T0 - timedelta(minutes=2), end=T0, now=T0)
    dispatch(dispatcher, T0)
    dispatch(dispatcher, T0)
    assert len(transport.calls) == 1
    assert TaskExecution.objects.filter(status=ExecutionStatus.PENDING).count() == 2


def test_replaced_run_is_held_until_its_predecessor_is_stopped(make_task, make_executor, dispatcher, transport,
                                                              clock):
    task = make_task(execution_mode="replace", cron_expression="0 * * * * *")
    executor = make_executor(tasks=[task])
    fire_due(T0)
    dispatch(dispatcher, T0)
    old = TaskExecution.objects.get(status=ExecutionStatus.RUNNING)
    replacements = []
    Task.objects.filter(pk=task.pk).update(next_run_time=T0 + timedelta(minutes=1))
    fire_due(T0 + timedelta(minutes=1), on_replaced=replacements.extend)
    old.refresh_from_db()
    assert old.status == ExecutionStatus.CANCELLED
    assert dispatch(dispatcher, T0 + timedelta(minutes=1)) == 0, "held while the old run is being stopped"
    clock.now = T0 + timedelta(minutes=1)
    stops = []
    stop_replaced(replacements[0], clock=clock, stop=stops.append)
    assert stops == [old.pk]
    assert dispatch(dispatcher, T0 + timedelta(minutes=1)) == 1
    assert transport.calls[-1][1]["scheduled_time"] == "2030-01-01T12:01:00Z"
    assert executor.pk == TaskExecution.objects.get(status=ExecutionStatus.RUNNING).executor_id


def test_only_executors_carrying_the_tasks_labels_receive_its_runs(make_task, make_executor, dispatcher,
                                                                   transport):
    task = make_task(executor_labels={"region": "eu"})
    make_executor(tasks=[task], labels={"region": "us"})
    eu = make_executor(tasks=[task], labels={"region": "eu", "tier": "gpu"})
    fire_due(T0)
    dispatch(dispatcher, T0)
    assert [url for url, _ in transport.calls] == [eu.base_url + "/execute"]


def test_no_executor_with_the_labels_fails_the_run_saying_so(make_task, make_executor, dispatcher, transport):
    task = make_task(executor_labels={"region": "eu"}, max_retry=0)
    make_executor(tasks=[task], labels={"region": "us"})
    fire_due(T0)
    dispatch(dispatcher, T0)
    run = TaskExecution.objects.get(task=task)
    assert run.status == ExecutionStatus.FAILED and "labels" in run.logs and not transport.calls


def test_a_broadcast_fire_is_one_run_with_one_shard_per_eligible_executor(make_task, make_executor, dispatcher,
                                                                          transport, clock):
    task = make_task(load_balance_strategy="broadcast", executor_labels={"region": "eu"}, max_retry=1)
    executors = [make_executor(tasks=[task], labels={"region": "eu"}) for _ in range(3)]
    make_executor(tasks=[task], labels={"region": "us"})  # not targeted
    fire_due(T0)
    dispatch(dispatcher, T0)
    parent = TaskExecution.objects.get(task=task, shard=0)
    shards = list(shards_of(parent).order_by("shard"))
    assert parent.status == ExecutionStatus.RUNNING and parent.shard_total == 3 and parent.executor_id is None
    assert [(s.shard_index, s.shard_total, s.executor_id) for s in shards] == [
        (i, 3, executor.pk) for i, executor in enumerate(executors)]
    sent = {url.rsplit("/", 1)[0]: (p["shard_index"], p["shard_total"]) for url, p in transport.calls}
    assert sent == {executor.base_url: (i, 3) for i, executor in enumerate(executors)}

    from executions.services import apply_callback
    for shard in shards[:2]:
        apply_callback(execution_id=shard.pk, status="success", result=None, logs=None, end_time=None, now=T0)
    parent.refresh_from_db()
    assert parent.status == ExecutionStatus.RUNNING, "one shard still runs"
    apply_callback(execution_id=shards[2].pk, status="failed", result=None, logs=None, end_time=None, now=T0)
    retry = shards_of(parent).get(retry_count=1)
    assert (retry.shard, retry.executor_id) == (3, executors[2].pk), "retried as the same shard, same executor"
    parent.refresh_from_db()
    assert parent.status == ExecutionStatus.RUNNING, "waits for the shard's retry"

    clock.now = retry.dispatch_after
    dispatch(dispatcher, retry.dispatch_after)
    assert transport.calls[-1][0] == executors[2].base_url + "/execute"
    apply_callback(execution_id=retry.pk, status="success", result=None, logs=None, end_time=None,
                   now=retry.dispatch_after)
    parent.refresh_from_db()
    assert parent.status == ExecutionStatus.SUCCESS and "3/3 shards succeeded" in parent.logs
    assert not TaskExecution.objects.filter(task=task, shard=0, retry_count__gt=0).exists()


def test_a_broadcast_run_fails_when_a_shard_runs_out_of_retries(make_task, make_executor, dispatcher, transport):
    task = make_task(load_balance_strategy="broadcast", max_retry=0)
    make_executor(tasks=[task])
    make_executor(tasks=[task])
    fire_due(T0)
    dispatch(dispatcher, T0)
    from executions.services import apply_callback
    first, second = TaskExecution.objects.filter(task=task).exclude(shard=0).order_by("shard")
    apply_callback(execution_id=first.pk, status="timeout", result=None, logs=None, end_time=None, now=T0)
    apply_callback(execution_id=second.pk, status="success", result=None, logs=None, end_time=None, now=T0)
    parent = TaskExecution.objects.get(task=task, shard=0)
    assert parent.status == ExecutionStatus.FAILED and "not succeeded: shard_index 0" in parent.logs


def test_stopping_a_broadcast_run_stops_its_shards(make_task, make_executor, dispatcher, transport):
    from executions.services import stop_execution
    task = make_task(load_balance_strategy="broadcast")
    make_executor(tasks=[task])
    make_executor(tasks=[task])
    fire_due(T0)
    dispatch(dispatcher, T0)
    parent = TaskExecution.objects.get(task=task, shard=0)
    stop_execution(execution_id=parent.pk, now=T0)
    assert set(TaskExecution.objects.filter(task=task).values_list("status", flat=True)) == {"cancelled"}
