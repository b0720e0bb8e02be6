from datetime import datetime

from django.db.models import Prefetch, Q, QuerySet

from scheduler_project.errors import DomainError, ErrorCode
from tasks.choices import ScheduleType, TaskStatus
from tasks.models import Task, TaskExecutor


def _with_assignments() -> QuerySet[Task]:
    return Task.objects.select_related("created_by", "created_by_key").prefetch_related(
        Prefetch("task_executors", queryset=TaskExecutor.objects.select_related("executor"))
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
    return tasks.order_by("-created_at", "id")


def preview_fires(task: Task, now: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times from ``now`` (whatever the task's status), for previews."""
    schedule = task.schedule()
    fires: list[datetime] = []
    if task.schedule_type == ScheduleType.ONCE:
        return [task.next_run_time] if task.next_run_time else []
    current = now
    while len(fires) < count:
        upcoming = schedule.next_after(current)
        if upcoming is None:
            break
        fires.append(upcoming)
        current = upcoming
    return fires


# A typed filter value (console filters, the timeline) matches at most this many rows.
MAX_FILTER_MATCHES = 200


def task_ids_matching(text: str) -> list[str]:
    """Ids of the tasks whose id is ``text`` or whose name contains it (at most ``MAX_FILTER_MATCHES``)."""
    return list(Task.objects.filter(Q(pk=text) | Q(name__icontains=text))
                .values_list("pk", flat=True)[:MAX_FILTER_MATCHES])
