from django.db import models

from core import states
from core.policy import TriggerType as Trigger
from core.states import ACTIVE_STATUSES, CALLBACK_STATUSES, RETRYABLE_STATUSES, TERMINAL_STATUSES  # noqa: F401


class ExecutionStatus(models.TextChoices):
    PENDING = states.ExecutionStatus.PENDING, "Pending"
    RUNNING = states.ExecutionStatus.RUNNING, "Running"
    SUCCESS = states.ExecutionStatus.SUCCESS, "Success"
    FAILED = states.ExecutionStatus.FAILED, "Failed"
    TIMEOUT = states.ExecutionStatus.TIMEOUT, "Timeout"
    SKIPPED = states.ExecutionStatus.SKIPPED, "Skipped"
    CANCELLED = states.ExecutionStatus.CANCELLED, "Cancelled"


class TriggerType(models.TextChoices):
    SCHEDULED = Trigger.SCHEDULED, "Scheduled (cron)"
    MANUAL = Trigger.MANUAL, "Manual trigger"
    BACKFILL = Trigger.BACKFILL, "Backfill"
