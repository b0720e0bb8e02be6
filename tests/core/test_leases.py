"""The lease protocol's pure rules, one row per case: accept-by, failover, expiry, late results, overdue runs."""

from datetime import UTC, datetime, timedelta

import pytest

from core.leases import (
    LateResult,
    LeaseAnswer,
    LeaseVerdict,
    accept_by_for,
    expired_lease_verdict,
    first_lease_until,
    late_result,
    lease_expired,
    may_fail_over,
    overdue_runs,
    renewed_lease_until,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
THRESHOLD = timedelta(seconds=5)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_accept_by_is_the_send_plus_the_dispatch_timeout_and_the_first_lease_runs_a_lease_past_it():
    assert accept_by_for(at(0), 5) == at(5)
    assert first_lease_until(at(5), 15) == at(20)
    assert renewed_lease_until(at(30), 15) == at(45)


@pytest.mark.parametrize(("now", "accept_by", "answered", "expected"), [
    (at(1), at(5), True, True),  # refused with an answer: it holds nothing
    (at(1), at(5), False, False),  # no answer yet before accept_by: it may still read the request
    (at(5), at(5), False, True),  # from accept_by on it must refuse it
    (at(9), at(5), False, True),
    (at(1), None, False, True),  # never sent (no attempt)
])
def test_failover_waits_for_accept_by_only_when_the_executor_did_not_answer(now, accept_by, answered, expected):
    assert may_fail_over(now=now, accept_by=accept_by, answered=answered) is expected


@pytest.mark.parametrize(("now", "lease_until", "expected"), [
    (at(10), at(20), False), (at(20), at(20), False), (at(20.001), at(20), True), (at(99), None, False),
])
def test_lease_expires_strictly_after_its_instant(now, lease_until, expected):
    assert lease_expired(now=now, lease_until=lease_until) is expected


@pytest.mark.parametrize(("answer", "verdict"), [
    (LeaseAnswer.RUNNING, LeaseVerdict.RENEW), (LeaseAnswer.FINISHED, LeaseVerdict.APPLY_RESULT),
    (LeaseAnswer.UNKNOWN, LeaseVerdict.LOST), (LeaseAnswer.UNREACHABLE, LeaseVerdict.LOST),
])
def test_an_expired_lease_is_lost_unless_the_executor_holds_or_finished_the_run(answer, verdict):
    assert expired_lease_verdict(answer) is verdict


@pytest.mark.parametrize(("end", "deadline", "by_scheduler", "moved_on", "expected"), [
    (at(9), at(10), True, False, LateResult.APPLY),
    (at(10), at(10), True, False, LateResult.APPLY),  # the deadline itself is in time
    (at(9), at(10), True, True, LateResult.RECORD),
    (at(11), at(10), True, False, LateResult.REFUSE),  # finished too late: the timeout stands
    (at(9), at(10), False, False, LateResult.REFUSE),  # ended by the executor or an operator: final
    (None, at(10), True, False, LateResult.REFUSE),
    (at(9), None, True, False, LateResult.REFUSE),
])
def test_a_late_result_counts_only_within_the_deadline_and_before_a_moved_on(
        end, deadline, by_scheduler, moved_on, expected):
    assert late_result(end_time=end, deadline=deadline, ended_by_scheduler=by_scheduler,
                       moved_on=moved_on) is expected


@pytest.mark.parametrize(("policy", "due", "missed", "send", "skip"), [
    ("skip", [98], False, [98], []),  # on time: sent whatever the policy
    ("skip", [70, 80], False, [], [70, 80]),
    ("fire_all", [70, 80], True, [70, 80], []),
    ("fire_once", [70, 80], False, [80], [70]),  # one run stands for the window: the newest
    ("fire_once", [70, 80], True, [], [70, 80]),  # the task's own fire was missed too: firing makes the one run
    ("fire_once", [80, 97], False, [97], [80]),  # an on-time run already stands for the window
    ("skip", [80, 97], False, [97], [80]),
])
def test_runs_fired_ahead_and_sent_late_follow_the_misfire_policy(policy, due, missed, send, skip):
    result = overdue_runs(policy, [at(s) for s in due], now=at(100), threshold=THRESHOLD, task_fire_missed=missed)
    assert result == ([at(s) for s in send], [at(s) for s in skip])
