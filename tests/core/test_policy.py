"""The pure scheduling rules, tick by tick with plain datetimes: no database, no clock, no sleeping."""

from datetime import UTC, datetime, timedelta

import pytest

from core.cron import parse_cron
from core.policy import (
    FireAction,
    HealthState,
    attempts_status,
    broadcast_outcome,
    decide_fire,
    may_dispatch,
    next_health,
    plan_fires,
    retry_delay_seconds,
)

EVERY_SECOND = parse_cron("*/1 * * * * *")
EVERY_MINUTE = parse_cron("0 * * * * *")
THRESHOLD = timedelta(seconds=5)


def at(second: float, minute: int = 0) -> datetime:
    return datetime(2024, 1, 1, 0, minute, tzinfo=UTC) + timedelta(seconds=second)


def plan(first_due, now, policy="fire_once", schedule=EVERY_SECOND, limit=100):
    return plan_fires(first_due=first_due, now=now, next_after=schedule.next_after,
                      prev_before=schedule.prev_before, policy=policy, misfire_threshold=THRESHOLD, limit=limit)


def test_on_time_fire_runs_once_and_advances():
    result = plan(at(10), at(10.2))
    assert result.run == [at(10)] and result.skip == [] and result.missed == 0
    assert result.next_run_time == at(11)


def test_consecutive_ticks_fire_each_second_exactly_once():
    first_due, fired = at(1), []
    for tick in range(1, 50):  # a tick every 0.2 s for ten seconds
        now = at(tick * 0.2)
        if first_due <= now:
            result = plan(first_due, now)
            fired += result.run
            first_due = result.next_run_time
    assert fired == [at(s) for s in range(1, 10)]


def test_a_slightly_late_tick_is_not_a_misfire():
    result = plan(at(10), at(12))  # 10, 11, 12 all within the threshold
    assert result.run == [at(10), at(11), at(12)] and result.missed == 0


@pytest.mark.parametrize(
    ("policy", "run", "skip"),
    [
        ("fire_once", [at(0, 5)], []),  # one run stands for the missed window
        ("fire_all", [at(0, m) for m in range(1, 6)], []),
        ("skip", [], [at(0, m) for m in range(1, 6)]),
    ],
)
def test_misfire_policies_after_an_outage(policy, run, skip):
    result = plan(at(0, 1), at(30, 5), policy=policy, schedule=EVERY_MINUTE)  # minutes 1..5 missed
    assert result.run == run and result.skip == skip
    assert result.missed == 5 and not result.more_missed
    assert result.next_run_time == at(0, 6)


def test_fire_once_with_an_on_time_fire_does_not_add_a_second_run():
    result = plan(at(0), at(30))  # 0..24 missed, 25..30 on time
    assert result.run == [at(s) for s in range(25, 31)]
    assert result.missed == 25


def test_a_week_long_outage_is_bounded_by_the_limit():
    week = 7 * 24 * 3600
    result = plan(at(0), at(week), policy="fire_all", limit=10)
    assert len(result.run) == 10 and result.run[-1] == at(week)
    assert result.more_missed


@pytest.mark.parametrize(
    ("mode", "running", "waiting", "action"),
    [
        ("parallel", 5, 5, FireAction.QUEUE),
        ("skip", 0, 0, FireAction.QUEUE),
        ("skip", 1, 0, FireAction.SKIP),
        ("skip", 0, 1, FireAction.SKIP),
        ("sequential", 0, 0, FireAction.QUEUE),
        ("sequential", 1, 0, FireAction.QUEUE),  # waits for the run in progress
        ("sequential", 1, 1, FireAction.SKIP),  # at most one waits
        ("sequential", 0, 1, FireAction.QUEUE),  # one queued, none running yet: it will run next
        ("sequential", 0, 2, FireAction.SKIP),
    ],
)
def test_execution_modes(mode, running, waiting, action):
    decision = decide_fire(mode, running=running, waiting=waiting)
    assert decision.action is action
    assert (decision.reason != "") == (action is FireAction.SKIP)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown execution mode"):
        decide_fire("batch", running=0, waiting=0)


@pytest.mark.parametrize(
    ("mode", "trigger", "running", "allowed"),
    [
        ("sequential", "scheduled", 1, False),
        ("sequential", "scheduled", 0, True),
        ("sequential", "manual", 1, True),  # manual triggers bypass the mode
        ("parallel", "scheduled", 9, True),
        ("skip", "scheduled", 1, True),
    ],
)
def test_may_dispatch(mode, trigger, running, allowed):
    assert may_dispatch(mode, trigger_type=trigger, running=running) is allowed


def test_health_needs_three_failures_to_go_unhealthy_and_two_successes_to_recover():
    state = HealthState(is_healthy=True)
    history = []
    for ok in [False, False, True, False, False, False, True, False, True, True]:
        state = next_health(state, ok=ok, failure_threshold=3, recovery_threshold=2)
        history.append(state.is_healthy)
    assert history == [True, True, True, True, True, False, False, False, False, True]


@pytest.mark.parametrize(("attempt", "delay"), [(1, 2.0), (2, 4.0), (3, 8.0), (8, 256.0), (9, 300.0), (500, 300.0)])
def test_retry_backoff_is_exponential_and_capped(attempt, delay):
    assert retry_delay_seconds(attempt, base=2.0, cap=300.0) == delay


def test_retry_attempts_count_from_one():
    with pytest.raises(ValueError):
        retry_delay_seconds(0, base=2.0, cap=300.0)



def plan_ahead(first_due, now, horizon, policy="fire_once", schedule=EVERY_SECOND, limit=100):
    return plan_fires(first_due=first_due, now=now, next_after=schedule.next_after,
                      prev_before=schedule.prev_before, policy=policy, misfire_threshold=THRESHOLD, limit=limit,
                      horizon=horizon)


def test_firing_ahead_plans_the_fire_times_up_to_the_horizon():
    result = plan_ahead(at(10), at(10.1), horizon=at(12.1))
    assert result.run == [at(10), at(11), at(12)] and result.missed == 0
    assert result.next_run_time == at(13)


def test_fire_times_ahead_are_never_late_and_do_not_count_against_the_limit():
    result = plan_ahead(at(10), at(10.1), horizon=at(12.1), limit=1)
    assert result.run == [at(10), at(11), at(12)] and not result.more_missed


def test_fire_once_after_an_outage_still_runs_the_missed_window_besides_the_runs_ahead():
    result = plan_ahead(at(0, 1), at(30, 5), horizon=at(30, 5) + timedelta(minutes=1), schedule=EVERY_MINUTE)
    assert result.run == [at(0, 5), at(0, 6)] and result.missed == 5
    assert result.next_run_time == at(0, 7)


@pytest.mark.parametrize(
    ("mode", "running", "waiting", "max_instances", "action"),
    [
        ("replace", 0, 0, None, FireAction.QUEUE),
        ("replace", 1, 0, None, FireAction.REPLACE),  # cancels the run in progress
        ("replace", 0, 1, None, FireAction.REPLACE),  # and a run still waiting
        ("queue", 1, 5, None, FireAction.QUEUE),  # every fire waits its turn
        ("queue", 1, 99, None, FireAction.SKIP),  # up to the default bound (100)
        ("queue", 1, 1, 3, FireAction.QUEUE),
        ("queue", 1, 2, 3, FireAction.SKIP),  # max_instances bounds the queue
        ("parallel", 1, 1, 2, FireAction.SKIP),
    ],
)
def test_replace_and_queue_modes(mode, running, waiting, max_instances, action):
    decision = decide_fire(mode, running=running, waiting=waiting, max_instances=max_instances)
    assert decision.action is action
    assert (decision.reason != "") == (action is FireAction.SKIP)


@pytest.mark.parametrize(
    ("mode", "trigger", "running", "max_instances", "allowed"),
    [
        ("queue", "scheduled", 1, None, False),  # one at a time
        ("queue", "scheduled", 0, None, True),
        ("replace", "scheduled", 1, None, False),  # the replaced run must have stopped first
        ("queue", "manual", 1, None, True),
        ("parallel", "backfill", 1, 2, True),  # a backfill waits for max_instances, never skips
        ("parallel", "backfill", 2, 2, False),
        ("parallel", "backfill", 50, None, True),
        ("skip", "backfill", 1, None, False),  # one at a time instead of skipping
        ("sequential", "backfill", 0, None, True),
    ],
)
def test_may_dispatch_controls(mode, trigger, running, max_instances, allowed):
    assert may_dispatch(mode, trigger_type=trigger, running=running, max_instances=max_instances) is allowed


@pytest.mark.parametrize(
    ("shards", "outcome"),
    [
        ({1: "success", 2: "success", 3: "success"}, "success"),
        ({1: "success", 2: "running", 3: "success"}, None),  # still running
        ({1: "success", 2: "pending", 3: "failed"}, None),  # a shard's retry is pending
        ({1: "success", 2: "failed", 3: "success"}, "failed"),
        ({1: "timeout", 2: "success"}, "failed"),
        ({1: "cancelled", 2: "success"}, "cancelled"),
        ({1: "cancelled", 2: "failed"}, "failed"),
        ({}, None),
    ],
)
def test_a_broadcast_run_succeeds_when_every_shard_does(shards, outcome):
    assert broadcast_outcome(shards) == outcome


@pytest.mark.parametrize(
    ("attempts", "status"),
    [
        ({0: "running"}, "running"),
        ({0: "failed", 1: "pending"}, "pending"),  # its retry waits
        ({0: "failed", 1: "timeout"}, "timeout"),  # the latest attempt's
        ({0: "success", 1: "cancelled"}, "success"),  # lost, then its late result applied: the retry was cancelled
        ({1: "success", 0: "failed"}, "success"),
    ],
)
def test_a_shards_status_is_its_latest_attempts_unless_one_succeeded(attempts, status):
    assert attempts_status(attempts) == status
