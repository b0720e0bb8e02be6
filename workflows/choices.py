from django.db import models

from core.policy import ExecutionMode as Mode
from core.workflows import EdgeCondition as Condition
from core.workflows import RunStatus


class WorkflowStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"


class OverlapPolicy(models.TextChoices):
    """Between runs of a workflow, as a task's execution mode between its runs; a task's ``replace`` and
    ``queue`` are not offered (a workflow run is not cancelled by the next one, nor buffered beyond one)."""

    PARALLEL = Mode.PARALLEL, "Parallel"
    SEQUENTIAL = Mode.SEQUENTIAL, "Sequential"
    SKIP = Mode.SKIP, "Skip"


class EdgeCondition(models.TextChoices):
    ON_SUCCESS = Condition.ON_SUCCESS, "On success"
    ON_FAILURE = Condition.ON_FAILURE, "On failure"
    ALWAYS = Condition.ALWAYS, "Always"


class WorkflowRunStatus(models.TextChoices):
    # Waiting for the workflow's previous run to end (overlap policy "sequential").
    PENDING = "pending", "Pending"
    RUNNING = RunStatus.RUNNING, "Running"
    SUCCESS = RunStatus.SUCCESS, "Success"
    FAILED = RunStatus.FAILED, "Failed"
    CANCELLED = RunStatus.CANCELLED, "Cancelled"
    # A fire the overlap policy "skip" (or a misfire policy "skip") recorded without running.
    SKIPPED = "skipped", "Skipped"


ACTIVE_RUN_STATUSES = frozenset({WorkflowRunStatus.PENDING, WorkflowRunStatus.RUNNING})
