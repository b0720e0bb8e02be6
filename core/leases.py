"""Execution leases: the pure rules of the protocol between the scheduler and its executors.

A dispatch is one *attempt* of an execution: it carries the execution id, an attempt number that grows on
every (re-)dispatch, and ``accept_by``, the instant after which the executor must refuse it. An executor
that accepts holds the run under a *lease* it renews; a lease that runs out means the run is lost. These
functions take the instants and state and return decisions: no Django, no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from core.policy import MisfirePolicy


def accept_by_for(sent: datetime, dispatch_timeout: float) -> datetime:
    """The last instant an executor may accept a dispatch sent at ``sent``."""
    return sent + timedelta(seconds=dispatch_timeout)


def first_lease_until(accept_by: datetime, lease_seconds: float) -> datetime:
    """A new attempt's lease: the executor has until ``accept_by`` to accept, then a full lease to renew it."""
    return accept_by + timedelta(seconds=lease_seconds)


def renewed_lease_until(now: datetime, lease_seconds: float) -> datetime:
    return now + timedelta(seconds=lease_seconds)


def may_fail_over(*, now: datetime, accept_by: datetime | None, answered: bool) -> bool:
    """Whether the run may go to another executor after this attempt was not accepted.

    An executor that answered (any HTTP status but 2xx), or that was never reached (connection refused, the
    address guard), holds nothing. One that did not answer may still read the request later (a frozen
    process keeps it in its socket buffer): only once ``accept_by`` has passed is it sure to refuse it.
    """
    return answered or accept_by is None or now >= accept_by


def lease_expired(*, now: datetime, lease_until: datetime | None) -> bool:
    return lease_until is not None and now > lease_until


class LeaseAnswer(StrEnum):
    """What a run's executor says about it when the scheduler asks before declaring it lost."""

    RUNNING = "running"  # it holds the run (this attempt): the lease is renewed
    FINISHED = "finished"  # it has a result: applied as the executor's report
    UNKNOWN = "unknown"  # it does not hold this attempt: lost
    UNREACHABLE = "unreachable"  # no answer: lost


class LeaseVerdict(StrEnum):
    RENEW = "renew"
    APPLY_RESULT = "apply_result"
    LOST = "lost"


def expired_lease_verdict(answer: LeaseAnswer) -> LeaseVerdict:
    """An expired lease is lost unless its executor, asked, still holds the run or hands over its result."""
    if answer == LeaseAnswer.RUNNING:
        return LeaseVerdict.RENEW
    if answer == LeaseAnswer.FINISHED:
        return LeaseVerdict.APPLY_RESULT
    return LeaseVerdict.LOST


class LateResult(StrEnum):
    """What becomes of a result that arrives after the scheduler ended the run itself (timeout, lost)."""

    APPLY = "apply"  # done in time, nothing re-ran it: the result stands
    RECORD = "record"  # done in time, but what followed the presumed end has happened: noted, counted, not applied
    REFUSE = "refuse"  # ended after the deadline (or the run was ended by an operator or the executor)


def late_result(*, end_time: datetime | None, deadline: datetime | None, ended_by_scheduler: bool,
                moved_on: bool) -> LateResult:
    """A late result counts when the scheduler only presumed the run's end and the executor's own ``end_time``
    lies within the run's deadline. If what followed the presumed end has happened by then (``moved_on``: a
    retry started, a workflow run advanced past the node, a broadcast run ended), the presumed status stays:
    undoing it would contradict what was built on it."""
    if not ended_by_scheduler or end_time is None or deadline is None or end_time > deadline:
        return LateResult.REFUSE
    return LateResult.RECORD if moved_on else LateResult.APPLY


def overdue_runs(policy: str, due_times: Sequence[datetime], *, now: datetime, threshold: timedelta,
                 task_fire_missed: bool) -> tuple[list[datetime], list[datetime]]:
    """Runs fired ahead of their time (one task's, scheduled, first attempts) that no leader sent when due:
    which to send and which to record as skipped, by the task's misfire policy, exactly as for fires that
    were never created. Returns ``(send, skip)``.

    A run no later than ``threshold`` is on time and sent. Of the late ones, ``fire_all`` sends each,
    ``skip`` none; ``fire_once`` sends the newest one, unless an on-time run already stands for the window
    or the task's own next fire was missed too (``task_fire_missed``: firing will create the one run).
    """
    on_time = [due for due in due_times if now - due <= threshold]
    late = sorted(due for due in due_times if now - due > threshold)
    if not late or policy == MisfirePolicy.FIRE_ALL:
        return list(due_times), []
    if policy == MisfirePolicy.SKIP or on_time or task_fire_missed:
        return on_time, late
    return [*on_time, late[-1]], late[:-1]
