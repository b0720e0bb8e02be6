from django.db import models

from core.workflows import EdgeCondition as Condition
from core.workflows import RunStatus


class WorkflowStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"


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
