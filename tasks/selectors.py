from datetime import datetime, timedelta

from django.db.models import Prefetch, Q, QuerySet

from core.controls import PlannedFire, preview
from core.schedules import OneShotSchedule
from scheduler_project.errors import DomainError, ErrorCode
from tasks.choices import ScheduleType, TaskStatus
from tasks.models import BlackoutCalendar, Task, TaskExecutor


def _with_assignments() -> QuerySet[Task]:
    return Task.objects.select_related("created_by", "created_by_key").prefetch_related(
        Prefetch("task_executors", queryset=TaskExecutor.objects.select_related("executor")), "calendars"
    )


def task_get(task_id: str) -> Task:
    """A task with its assignments; deleted tasks are still readable so their history stays reachable."""
    try:
        return _with_assignments().get(pk=task_id)
    except Task.DoesNotExist:
        raise DomainError(ErrorCode.TASK_NOT_FOUND, f"task '{task_id}' does not exist") from None


def task_must_exist(task_id: str) -> None:
    """Raises TASK_NOT_FOUND unless the task exists (deleted ones included), without reading it: for reads
    about a task's history, where its assignments would be two wasted queries."""
    if not Task.objects.filter(pk=task_id).exists():
        raise DomainError(ErrorCode.TASK_NOT_FOUND, f"task '{task_id}' does not exist")


def task_list(*, status: str | None = None, name: str | None = None) -> QuerySet[Task]:
    tasks = _with_assignments()
    tasks = tasks.filter(status=status) if status else tasks.exclude(status=TaskStatus.DELETED)
    if name:
        tasks = tasks.filter(name__icontains=name)
    return tasks.order_by("-created_at", "-id")  # one direction: the created_at index (with its id) serves it


def preview_fires(task: Task, now: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times from ``now`` (whatever the task's status), for previews."""
    return [fire.scheduled_time for fire in planned_fires(task, now, count) if fire.blackout is None]


def planned_fires(task: Task, now: datetime, count: int) -> list[PlannedFire]:
    """The fire times after ``now`` up to the ``count``-th that runs, as the scheduler will treat them:
    window, blackout calendars (a skipped fire names its calendar) and jitter applied."""
    if task.schedule_type == ScheduleType.ONCE:
        schedule = OneShotSchedule(task.next_run_time)
        now = min(now, task.next_run_time - timedelta(microseconds=1)) if task.next_run_time else now
    else:
        schedule = task.schedule()
    return preview(schedule, after=now, count=count, task_id=task.pk, jitter_seconds=task.jitter_seconds,
                   calendars=task.blackouts())


def calendar_list() -> QuerySet[BlackoutCalendar]:
    return BlackoutCalendar.objects.prefetch_related("tasks").order_by("name", "id")


def calendar_get(calendar_id: str) -> BlackoutCalendar:
    try:
        return calendar_list().get(pk=calendar_id)
    except BlackoutCalendar.DoesNotExist:
        raise DomainError(ErrorCode.NOT_FOUND, f"calendar '{calendar_id}' does not exist") from None


# A typed filter value (console filters, the timeline) matches at most this many rows.
MAX_FILTER_MATCHES = 200


def task_ids_matching(text: str) -> list[str]:
    """Ids of the tasks whose id is ``text`` or whose name contains it (at most ``MAX_FILTER_MATCHES``)."""
    return list(Task.objects.filter(Q(pk=text) | Q(name__icontains=text))
                .values_list("pk", flat=True)[:MAX_FILTER_MATCHES])
