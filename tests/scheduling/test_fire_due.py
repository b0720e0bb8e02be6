"""The fire_due step against the database, with the time passed in."""

from datetime import timedelta

import pytest
from django.db import IntegrityError

from executions.choices import ExecutionStatus, TriggerType
from executions.models import TaskExecution
from scheduling import firing
from scheduling.firing import fire_due, fire_task
from tasks.choices import TaskStatus
from tasks.models import Task
from tests.scheduling.conftest import T0


def executions(task):
    return list(TaskExecution.objects.filter(task=task).order_by("scheduled_time", "status"))


def test_due_task_fires_once_and_advances_next_run_time(make_task):
    task = make_task(parameters={"k": "v"})
    assert fire_due(T0 + timedelta(milliseconds=100)) == 1
    [execution] = executions(task)
    assert execution.scheduled_time == T0 and execution.status == ExecutionStatus.PENDING
    assert execution.trigger_type == TriggerType.SCHEDULED and execution.parameters == {"k": "v"}
    task.refresh_from_db()
    assert task.next_run_time == T0 + timedelta(seconds=1)


def test_firing_again_in_the_same_second_creates_nothing(make_task):
    task = make_task()
    fire_due(T0)
    assert fire_due(T0 + timedelta(milliseconds=500)) == 0
    assert len(executions(task)) == 1


def test_tasks_not_yet_due_or_not_active_do_not_fire(make_task):
    make_task(next_run_time=T0 + timedelta(seconds=5))
    make_task(status=TaskStatus.PAUSED)
    make_task(status=TaskStatus.DELETED)
    assert fire_due(T0) == 0
    assert TaskExecution.objects.count() == 0


def test_a_second_leader_with_stale_state_cannot_fire_the_same_time_twice(make_task):
    task = make_task()
    stale_copy = Task.objects.get(pk=task.pk)
    fire_task(task, T0)
    # The stale leader's compare-and-set on next_run_time fails: nothing is written.
    assert fire_task(stale_copy, T0) == 0
    assert len(executions(task)) == 1


def test_the_unique_fire_key_rejects_a_duplicate_insert(make_task):
    task = make_task()
    fire_task(task, T0)
    with pytest.raises(IntegrityError):
        TaskExecution.objects.create(task=task, scheduled_time=T0, trigger_type=TriggerType.SCHEDULED)


@pytest.mark.parametrize(
    ("policy", "pending", "skipped"),
    [("fire_once", 1, 0), ("fire_all", 5, 0), ("skip", 0, 5)],
)
def test_misfire_policy_after_an_outage(make_task, policy, pending, skipped):
    task = make_task(cron_expression="0 * * * * *", misfire_policy=policy, next_run_time=T0 + timedelta(minutes=1))
    fire_due(T0 + timedelta(minutes=5, seconds=30))  # minutes 1..5 passed with no leader
    rows = executions(task)
    assert sum(r.status == ExecutionStatus.PENDING for r in rows) == pending
    assert sum(r.status == ExecutionStatus.SKIPPED for r in rows) == skipped
    assert all("misfire" in r.logs for r in rows)
    task.refresh_from_db()
    assert task.next_run_time == T0 + timedelta(minutes=6)


def test_a_misfire_that_the_execution_mode_skips_still_records_the_missed_times(make_task):
    # fire_once folds minutes 1..4 into the run for minute 5; skip mode then skips that run because one is
    # still running. The skipped row is the only record of the missed times, so it must carry the note too.
    task = make_task(cron_expression="0 * * * * *", misfire_policy="fire_once", execution_mode="skip",
                     next_run_time=T0 + timedelta(minutes=1))
    TaskExecution.objects.create(task=task, scheduled_time=T0, status=ExecutionStatus.RUNNING)
    fire_due(T0 + timedelta(minutes=5, seconds=30))
    latest = executions(task)[-1]
    assert latest.status == ExecutionStatus.SKIPPED and latest.scheduled_time == T0 + timedelta(minutes=5)
    assert "misfire: 5 fire time(s) passed" in latest.logs and "skip mode" in latest.logs


def test_skip_mode_records_skipped_execution_while_previous_runs(make_task):
    task = make_task(execution_mode="skip")
    fire_due(T0)
    TaskExecution.objects.filter(task=task).update(status=ExecutionStatus.RUNNING)
    fire_due(T0 + timedelta(seconds=1))
    latest = executions(task)[-1]
    assert latest.status == ExecutionStatus.SKIPPED and "skip mode" in latest.logs
    assert latest.end_time is not None


def test_sequential_mode_keeps_at_most_one_waiting(make_task):
    task = make_task(execution_mode="sequential")
    fire_due(T0)
    TaskExecution.objects.filter(task=task).update(status=ExecutionStatus.RUNNING)
    fire_due(T0 + timedelta(seconds=1))  # waits
    fire_due(T0 + timedelta(seconds=2))  # one is already waiting: skipped
    statuses = [r.status for r in executions(task)]
    assert statuses == [ExecutionStatus.RUNNING, ExecutionStatus.PENDING, ExecutionStatus.SKIPPED]


def test_a_broken_schedule_is_parked_not_crash_looped(make_task):
    task = make_task()
    Task.objects.filter(pk=task.pk).update(cron_expression="not a cron")
    good = make_task()
    assert fire_due(T0) == 1  # the good task still fires
    task.refresh_from_db()
    assert task.next_run_time == T0 + timedelta(minutes=1)
    assert executions(good)


# --- chunks: many tasks per transaction ------------------------------------------------------------

def test_a_fire_another_node_recorded_rolls_back_only_that_task(make_task):
    first, taken, last = make_task(), make_task(), make_task()
    # A split-brain leader inserted `taken`'s fire but has not advanced its next_run_time yet.
    TaskExecution.objects.create(task=taken, scheduled_time=T0, trigger_type=TriggerType.SCHEDULED)
    assert fire_due(T0) == 2
    for task in (first, last):
        assert [r.scheduled_time for r in executions(task)] == [T0]
        task.refresh_from_db()
        assert task.next_run_time == T0 + timedelta(seconds=1)
    taken.refresh_from_db()
    assert taken.next_run_time == T0  # its advance was rolled back with its insert: re-planned next tick
    assert len(executions(taken)) == 1


def test_a_task_with_a_bad_execution_mode_is_parked_and_its_chunk_still_fires(make_task):
    broken, good = make_task(), make_task()
    Task.objects.filter(pk=broken.pk).update(execution_mode="no-such-mode")
    assert fire_due(T0) == 1
    assert executions(good) and not executions(broken)
    broken.refresh_from_db()
    assert broken.next_run_time == T0 + timedelta(minutes=1)


def test_a_batch_smaller_than_the_due_tasks_takes_the_highest_priority_first(make_task, settings):
    settings.SCHEDULER = {**settings.SCHEDULER, "FIRE_BATCH_SIZE": 2}
    low, high, middle = make_task(priority=1), make_task(priority=9), make_task(priority=5)
    assert fire_due(T0) == 2
    assert executions(high) and executions(middle) and not executions(low)


def test_chunks_fire_in_priority_order_and_stop_when_the_leader_loses_its_lock(make_task, monkeypatch):
    monkeypatch.setattr(firing, "FIRE_CHUNK_SIZE", 1)
    low, high, middle = make_task(priority=1), make_task(priority=9), make_task(priority=5)
    asked = []

    def still_leading():
        asked.append(True)
        return len(asked) < 2  # the lock is lost after the second chunk

    assert fire_due(T0, still_leading=still_leading) == 2
    assert executions(high) and executions(middle) and not executions(low)
    low.refresh_from_db()
    assert low.next_run_time == T0


def test_one_chunk_writes_every_due_task_of_a_burst(make_task, django_assert_max_num_queries):
    tasks = [make_task() for _ in range(30)]
    # Reads (due tasks, busy counts), one compare-and-set per task, one INSERT, and the transaction.
    with django_assert_max_num_queries(2 + 30 + 1 + 4):
        assert fire_due(T0) == 30
    assert TaskExecution.objects.filter(task__in=tasks, scheduled_time=T0).count() == 30


def test_a_task_edited_after_it_was_read_loses_only_its_own_fire(make_task):
    read = [make_task(), make_task(), make_task()]
    Task.objects.filter(pk=read[1].pk).update(next_run_time=T0 + timedelta(hours=1))  # e.g. the API
    assert firing.fire_chunk(read, T0) == 2
    assert executions(read[0]) and executions(read[2]) and not executions(read[1])
    read[1].refresh_from_db()
    assert read[1].next_run_time == T0 + timedelta(hours=1)


AHEAD = timedelta(seconds=2)


def test_a_parallel_task_fires_ahead_with_each_run_dispatchable_at_its_time(make_task):
    task = make_task()
    assert fire_due(T0 + timedelta(milliseconds=100), ahead=AHEAD) == 3
    runs = executions(task)
    assert [run.scheduled_time for run in runs] == [T0 + timedelta(seconds=s) for s in range(3)]
    assert [run.dispatch_after for run in runs] == [T0 + timedelta(milliseconds=100)] + [
        T0 + timedelta(seconds=s) for s in (1, 2)]
    task.refresh_from_db()
    assert task.next_run_time == T0 + timedelta(seconds=3)
    assert fire_due(T0 + timedelta(seconds=1), ahead=AHEAD) == 1  # only the new second at the horizon


def test_a_task_not_due_yet_fires_ahead_only_within_the_horizon(make_task):
    later = make_task(next_run_time=T0 + timedelta(seconds=5))
    assert fire_due(T0, ahead=AHEAD) == 0
    assert fire_due(T0 + timedelta(seconds=3), ahead=AHEAD) == 1
    [run] = executions(later)
    assert run.scheduled_time == run.dispatch_after == T0 + timedelta(seconds=5)


@pytest.mark.parametrize("fields", [{"execution_mode": "sequential"}, {"execution_mode": "skip"},
                                    {"max_instances": 2}])
def test_a_task_whose_fire_depends_on_the_runs_in_progress_fires_only_when_due(make_task, fields):
    task = make_task(next_run_time=T0 + timedelta(seconds=1), **fields)
    assert fire_due(T0, ahead=AHEAD) == 0
    assert fire_due(T0 + timedelta(seconds=1), ahead=AHEAD) == 1
    assert [run.scheduled_time for run in executions(task)] == [T0 + timedelta(seconds=1)]


def test_pausing_a_task_cancels_the_runs_it_fired_ahead(make_task):
    from tasks.services import task_pause

    task = make_task(next_run_time=T0 + timedelta(seconds=1))
    fire_due(T0, ahead=AHEAD)
    task_pause(task_id=task.pk, now=T0)
    assert {run.status for run in executions(task)} == {ExecutionStatus.CANCELLED}


def test_a_new_schedule_withdraws_the_runs_fired_ahead_under_the_old_one(make_task):
    from tasks.services import task_update

    task = make_task(next_run_time=T0 + timedelta(seconds=1))
    retry_waiting = TaskExecution.objects.create(task=task, scheduled_time=T0 - timedelta(seconds=5), retry_count=1,
                                                 dispatch_after=T0 + timedelta(seconds=1))
    fire_due(T0, ahead=AHEAD)
    task_update(task_id=task.pk, data={"cron_expression": "0 * * * * *"}, now=T0)
    ahead = [run for run in executions(task) if run.retry_count == 0]
    assert ahead and {run.status for run in ahead} == {ExecutionStatus.CANCELLED}
    retry_waiting.refresh_from_db()
    assert retry_waiting.status == ExecutionStatus.PENDING  # not a fire of the old schedule: left alone


@pytest.mark.django_db(transaction=True)
def test_a_pause_chosen_as_deadlock_victim_runs_again_whole(make_task, monkeypatch):
    """The leader inserts fired runs while an operator pauses: MariaDB may roll the pause back as a deadlock
    victim; the service runs its transaction again instead of answering 500."""
    from django.db import OperationalError

    from tasks import services

    task = make_task(next_run_time=T0 + timedelta(seconds=1))
    fire_due(T0, ahead=AHEAD)
    withdraw, calls = services._withdraw, []

    def deadlocked_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")
        return withdraw(*args, **kwargs)

    monkeypatch.setattr(services, "_withdraw", deadlocked_once)
    assert services.task_pause(task_id=task.pk, now=T0) == (TaskStatus.ACTIVE, TaskStatus.PAUSED)
    assert len(calls) == 2
    assert {run.status for run in executions(task)} == {ExecutionStatus.CANCELLED}


def test_tasks_due_together_on_one_schedule_are_planned_once(make_task, monkeypatch):
    same = [make_task() for _ in range(5)]
    other = make_task(cron_expression="*/2 * * * * *")
    planned = []
    real_plan = firing.plan_task
    monkeypatch.setattr(firing, "plan_task", lambda task, *args: planned.append(task) or real_plan(task, *args))
    assert fire_due(T0) == 6
    assert len(planned) == 2 and other in planned
    assert all(len(executions(task)) == 1 for task in [*same, other])
