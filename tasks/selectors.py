from django.db.models import Prefetch, QuerySet

from scheduler_project.errors import DomainError, ErrorCode
from tasks.choices import TaskStatus
from tasks.models import Task, TaskExecutor


def _with_assignments() -> QuerySet[Task]:
    return Task.objects.prefetch_related(
        Prefetch("task_executors", queryset=TaskExecutor.objects.select_related("executor"))
    )


def task_get(task_id: str) -> Task:
    """A task with its assignments; deleted tasks are still readable so their history stays reachable."""
    try:
        return _with_assignments().get(pk=task_id)
    except Task.DoesNotExist:
        raise DomainError(ErrorCode.TASK_NOT_FOUND, f"task '{task_id}' does not exist") from None


def task_list(*, status: str | None = None, name: str | None = None) -> QuerySet[Task]:
    tasks = _with_assignments()
    tasks = tasks.filter(status=status) if status else tasks.exclude(status=TaskStatus.DELETED)
    if name:
        tasks = tasks.filter(name__icontains=name)
    return tasks.order_by("-created_at", "id")
