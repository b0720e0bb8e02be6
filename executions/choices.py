from django.db import models


class ExecutionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCESS = "success", "Success"
    FAILED = "failed", "Failed"
    TIMEOUT = "timeout", "Timeout"
    SKIPPED = "skipped", "Skipped"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = frozenset({ExecutionStatus.PENDING, ExecutionStatus.RUNNING})
TERMINAL_STATUSES = frozenset(set(ExecutionStatus) - ACTIVE_STATUSES)
# What an executor may report through the callback (spec 000 §7.4), plus cancelled for a cooperative stop.
CALLBACK_STATUSES = (
    ExecutionStatus.SUCCESS,
    ExecutionStatus.FAILED,
    ExecutionStatus.TIMEOUT,
    ExecutionStatus.CANCELLED,
)
RETRYABLE_STATUSES = frozenset({ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT})


class TriggerType(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled (cron)"
    MANUAL = "manual", "Manual trigger"
