"""Windows, blackout calendars, jitter and the replace/queue modes in the fire_due step, time passed in."""

from datetime import timedelta

from core.controls import jitter
from executions.choices import ExecutionStatus
from executions.models import TaskExecution
from scheduling.firing import fire_due
from tasks.models import BlackoutCalendar, Task
from tests.scheduling.conftest import T0  # 2030-01-01 12:00 UTC, a Tuesday

MINUTELY = "0 * * * * *"


def rows(task):
    return list(TaskExecution.objects.filter(task=task).order_by("scheduled_time", "created_at"))


def test_a_fire_in_a_blackout_is_recorded_as_skipped_naming_the_calendar(make_task):
    calendar = BlackoutCalendar.objects.create(name="maintenance", timezone="Europe/Berlin",
                                               entries=["Tue 13:00-13:30"])  # 12:00-12:30 UTC in winter
    task = make_task(cron_expression=MINUTELY)
    task.calendars.add(calendar)
    fire_due(T0)
    [row] = rows(task)
    assert row.status == ExecutionStatus.SKIPPED and row.end_time == T0
    assert row.logs == "blackout: calendar 'maintenance' (Tue 13:00-13:30)"
    task.refresh_from_db()
    assert task.next_run_time == T0 + timedelta(minutes=1)  # the schedule goes on


def test_fires_outside_every_calendar_run(make_task):
    holidays = BlackoutCalendar.objects.create(name="holidays", entries=["2030-12-25"])
    task = make_task(cron_expression=MINUTELY)
    task.calendars.add(holidays)
    fire_due(T0)
    assert [row.status for row in rows(task)] == [ExecutionStatus.PENDING]


def test_no_fire_after_end_at(make_task):
    task = make_task(cron_expression=MINUTELY, end_at=T0 + timedelta(minutes=1))
    fire_due(T0)
    task.refresh_from_db()
    assert task.next_run_time == T0 + timedelta(minutes=1)  # end_at itself is in the window
    fire_due(T0 + timedelta(minutes=1))
    task.refresh_from_db()
    assert task.next_run_time is None and len(rows(task)) == 2


def test_jitter_delays_the_dispatch_not_the_scheduled_time(make_task):
    task = make_task(cron_expression=MINUTELY, jitter_seconds=30)
    fire_due(T0)
    [row] = rows(task)
    assert row.scheduled_time == T0
    assert row.dispatch_after == T0 + jitter(task.pk, T0, 30) > T0


def test_jitter_is_the_same_when_another_leader_fires_the_same_time(make_task):
    task = make_task(cron_expression=MINUTELY, jitter_seconds=30)
    fire_due(T0)
    first = rows(task)[0].dispatch_after
    TaskExecution.objects.all().delete()
    Task.objects.filter(pk=task.pk).update(next_run_time=T0)  # a new leader fires the same time again, later
    fire_due(T0 + jitter(task.pk, T0, 30) / 2)  # but before the jitter ran out (the task id is random)
    assert rows(task)[0].dispatch_after == first


def running_run(task, at):
    return TaskExecution.objects.create(task=task, scheduled_time=at, status=ExecutionStatus.RUNNING,
                                        start_time=at, dispatch_after=at)


def test_replace_cancels_the_running_run_and_holds_the_new_one_until_it_is_stopped(make_task, make_executor):
    task = make_task(cron_expression=MINUTELY, execution_mode="replace")
    executor = make_executor(tasks=[task])
    old = running_run(task, T0 - timedelta(minutes=1))
    TaskExecution.objects.filter(pk=old.pk).update(executor=executor)
    stops, released = [], []

    def on_replaced(replacements):
        [replacement] = replacements
        stops.extend(replacement.stopping)
        released.append(TaskExecution.objects.get(pk=replacement.run_id).dispatch_after)

    fire_due(T0, on_replaced=on_replaced)
    old.refresh_from_db()
    assert old.status == ExecutionStatus.CANCELLED and "replaced by the fire at" in old.logs
    assert stops == [old.pk]
    assert released[0] > T0 + timedelta(seconds=1), "the new run waits while the old one is stopped"


def test_replace_without_a_run_in_progress_just_fires(make_task):
    task = make_task(cron_expression=MINUTELY, execution_mode="replace")
    fire_due(T0, on_replaced=lambda replacements: (_ for _ in ()).throw(AssertionError("nothing to replace")))
    assert [(r.status, r.dispatch_after) for r in rows(task)] == [(ExecutionStatus.PENDING, T0)]


def test_queue_mode_buffers_every_fire_up_to_max_instances(make_task):
    task = make_task(cron_expression=MINUTELY, execution_mode="queue", max_instances=3)
    running_run(task, T0 - timedelta(minutes=3))
    for minute in range(4):
        Task.objects.filter(pk=task.pk).update(next_run_time=T0 + timedelta(minutes=minute))
        fire_due(T0 + timedelta(minutes=minute))
    statuses = [r.status for r in rows(task)]
    assert statuses == ["running", "pending", "pending", "skipped", "skipped"]
    assert "max_instances (3) reached" in rows(task)[-1].logs


def test_a_calendar_edited_into_the_database_unreadable_is_ignored_not_fatal(make_task):
    broken = BlackoutCalendar.objects.create(name="broken", entries=["not an entry"])
    task = make_task(cron_expression=MINUTELY)
    task.calendars.add(broken)
    other = make_task(cron_expression=MINUTELY)
    fire_due(T0)
    assert [row.status for row in rows(task)] == [ExecutionStatus.PENDING]
    assert [row.status for row in rows(other)] == [ExecutionStatus.PENDING]
