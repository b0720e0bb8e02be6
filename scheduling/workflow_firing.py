"""Firing workflows: due workflow schedules become workflow runs, exactly once per (workflow, scheduled time).

The same heap as tasks (``scheduling.firing``): ``workflows.next_run_time`` under an index on (status,
next_run_time), a compare-and-set advance in the transaction that inserts the runs, and the unique
(workflow, scheduled_time, trigger_type) key against a split-brain leader. Workflows are few next to
tasks, so each is fired in a transaction of its own. Those transactions, and the catch-up of stalled runs, are
the leader's writes: they go through its leadership term's fence (``scheduling.leader.Fence``) like a chunk of
task fires, so a deposed leader's late write is refused (``Deposed``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import IntegrityError

from core.cron import CronError
from core.policy import plan_fires
from scheduler_project.config import tunable
from scheduling.leader import UNFENCED, Fence, Unfenced
from workflows.choices import WorkflowStatus
from workflows.models import Workflow
from workflows.runs import advance_stalled
from workflows.services import fire_workflow, park_broken

logger = logging.getLogger(__name__)

BROKEN_WORKFLOW_RETRY = timedelta(minutes=1)


def due_workflows(now: datetime, limit: int) -> list[Workflow]:
    return list(Workflow.objects.filter(status=WorkflowStatus.ACTIVE, next_run_time__lte=now)
                .order_by("next_run_time")[:limit])


def fire_due_workflows(now: datetime, *, still_leading: Callable[[], bool] | None = None,
                       fence: Fence | Unfenced = UNFENCED) -> int:
    """Step: start the runs of the workflows due at ``now`` (misfire and overlap policies applied), and
    catch up the runs left with no node in progress (``workflows.runs.advance_stalled``). ``still_leading``
    is asked before each workflow after the first. ``fence`` checks the leader's term in each of these
    transactions (raises ``Deposed`` if it is over). Returns the runs written or advanced."""
    written = advance_stalled(now, atomic=fence.atomic)
    for position, workflow in enumerate(due_workflows(now, tunable("FIRE_BATCH_SIZE"))):
        if position and still_leading is not None and not still_leading():
            break
        written += fire_one(workflow, now, fence)
    return written


def fire_one(workflow: Workflow, now: datetime, fence: Fence | Unfenced = UNFENCED) -> int:
    try:
        schedule = workflow.schedule()
        plan = plan_fires(first_due=workflow.next_run_time, now=now, next_after=schedule.next_after,
                          prev_before=schedule.prev_before, policy=workflow.misfire_policy,
                          misfire_threshold=timedelta(seconds=tunable("MISFIRE_THRESHOLD_SECONDS")),
                          limit=tunable("MISFIRE_FIRE_ALL_LIMIT"))
    except (CronError, ValueError) as exc:
        logger.error("workflow %s (%s): cannot fire: %s; retrying in %s", workflow.pk, workflow.name, exc,
                     BROKEN_WORKFLOW_RETRY, extra=workflow.log_extra())
        park_broken(workflow, now=now, retry=BROKEN_WORKFLOW_RETRY)
        return 0
    note = ""
    if plan.missed:
        more = " or more" if plan.more_missed else ""
        note = (f"misfire: {plan.missed}{more} fire time(s) passed while no scheduler was leading "
                f"(policy {workflow.misfire_policy})")
    try:
        with fence.atomic():  # the compare-and-set and the runs commit only within this leader's term
            return fire_workflow(workflow, plan, note, now=now)
    except IntegrityError:
        logger.warning("workflow %s (%s): fire at %s already recorded by another node", workflow.pk, workflow.name,
                       workflow.next_run_time.isoformat(), extra=workflow.log_extra())
        return 0
