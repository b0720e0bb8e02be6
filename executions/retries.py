"""The retry policy: a failed or timed-out run with attempts left gets a new pending attempt after a backoff."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction

from core.policy import retry_delay_seconds
from executions.choices import RETRYABLE_STATUSES, ExecutionStatus
from executions.metrics import count_retry
from executions.models import TaskExecution
from scheduler_project.config import tunable
from tasks.choices import TaskStatus
from tasks.models import Task

logger = logging.getLogger(__name__)


def schedule_retry(execution: TaskExecution, *, now: datetime) -> TaskExecution | None:
    """Insert the next attempt of a run that just ended, if the task's policy asks for one.

    The attempt shares the fire's unique key except for ``retry_count``, so two nodes reacting to the
    same failure cannot both create it. Cancelled runs are never retried.
    """
    if execution.status not in RETRYABLE_STATUSES or execution.is_broadcast_parent:
        return None  # a broadcast run is retried shard by shard
    task = Task.objects.only("max_retry", "status").get(pk=execution.task_id)
    if task.status == TaskStatus.DELETED or execution.retry_count >= task.max_retry:
        return None
    attempt = execution.retry_count + 1
    delay = retry_delay_seconds(attempt, base=tunable("RETRY_BACKOFF_BASE_SECONDS"),
                                cap=tunable("RETRY_BACKOFF_MAX_SECONDS"))
    retry = TaskExecution(
        task_id=execution.task_id, scheduled_time=execution.scheduled_time, trigger_type=execution.trigger_type,
        retry_count=attempt, parameters=execution.parameters, status=ExecutionStatus.PENDING,
        dispatch_after=now + timedelta(seconds=delay), retry_of=execution,
        workflow_run_id=execution.workflow_run_id, workflow_node_id=execution.workflow_node_id,
        node_key=execution.node_key,
        # A broadcast shard's retry is the same shard, on the same executor.
        shard=execution.shard, shard_total=execution.shard_total,
        executor_id=execution.executor_id if execution.shard else None,
    )
    try:
        with transaction.atomic():
            retry.save(force_insert=True)
    except IntegrityError:
        logger.info("retry %s of execution %s already exists", attempt, execution.pk, extra=execution.log_extra())
        return None
    count_retry()
    logger.info("execution %s %s; retry %s/%s in %.1fs as %s", execution.pk, execution.status, attempt,
                task.max_retry, delay, retry.pk, extra=execution.log_extra())
    return retry
