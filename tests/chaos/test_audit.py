"""The chaos audit catches what it claims to: each check fed a recorded history that breaks it. No processes,
no database (the audit's inputs are plain rows, journal events and log text)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from core.cron import parse_cron
from tests.chaos import harness
from tests.chaos.harness import Audit

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


def new_audit() -> Audit:
    return Audit(seed=0, seconds=0, disruptions=[])


def task(policy: str = "fire_once", *, mode: str = "parallel", fired_until: int = 5):
    """A task firing every second from T0; firing reached T0 + ``fired_until`` s."""
    schedule = parse_cron("* * * * * *", "UTC")
    return SimpleNamespace(name=f"t-{policy}", misfire_policy=policy, execution_mode=mode,
                           next_run_time=T0 + timedelta(seconds=fired_until), schedule=lambda: schedule)


def row(second: int, *, status: str = "success", logs: str = "", retry: int = 0, task_id: str = "t", **fields):
    base = {"id": f"e{second}-{retry}", "task_id": task_id, "scheduled_time": T0 + timedelta(seconds=second),
            "trigger_type": "scheduled", "retry_count": retry, "status": status, "logs": logs,
            "start_time": None, "end_time": None, "deadline": None, "dispatch_after": T0 + timedelta(seconds=second),
            "retry_of_id": None}
    return {**base, **fields}


def fire_times(policy: str, rows: list[dict]) -> Audit:
    result = new_audit()
    harness._check_fire_times(result, {"t": task(policy)}, {"t": T0}, rows, paused_at=T0 + timedelta(seconds=4.5))
    return result


def test_every_fire_time_with_a_row_is_accounted_for():
    result = fire_times("fire_all", [row(s) for s in range(5)])
    assert result.fire_times == 5 and result.accounted["executed"] == 5 and not result.problems


def test_a_fire_time_without_a_row_is_unaccounted_unless_fire_once_counted_it():
    rows = [row(0), row(3, logs="misfire: 2 fire time(s) passed while no scheduler was leading"), row(4)]
    assert len(fire_times("fire_all", rows).unaccounted) == 2
    folded = fire_times("fire_once", rows)
    assert folded.unaccounted == [] and folded.accounted[harness.FOLDED_BY_FIRE_ONCE] == 2


def test_fire_once_may_not_fold_more_times_than_its_note_counts():
    rows = [row(0), row(4, logs="misfire: 2 fire time(s) passed while no scheduler was leading")]
    assert len(fire_times("fire_once", rows).unaccounted) == 3


def test_times_after_the_last_row_are_unaccounted():
    assert len(fire_times("fire_once", [row(0), row(1)]).unaccounted) == 3


def test_times_up_to_the_pause_count_even_when_the_task_never_moved_its_next_run_time_there():
    stuck = task("fire_all", fired_until=1)  # firing stopped advancing this task after its first fire
    result = new_audit()
    harness._check_fire_times(result, {"t": stuck}, {"t": T0}, [row(0)], paused_at=T0 + timedelta(seconds=4.5))
    assert result.fire_times == 5 and len(result.unaccounted) == 4


def test_a_fire_once_run_just_after_the_pause_may_count_missed_times_before_it():
    rows = [row(0), row(1), row(6, logs="misfire: 4 fire time(s) passed while no scheduler was leading")]
    folding = task("fire_once", fired_until=7)
    result = new_audit()
    harness._check_fire_times(result, {"t": folding}, {"t": T0}, rows, paused_at=T0 + timedelta(seconds=4.5))
    assert result.unaccounted == [] and result.fire_times == 5
    assert result.accounted == {"executed": 2, harness.FOLDED_BY_FIRE_ONCE: 3}


def test_a_misfire_skip_under_another_policy_is_a_mismatch():
    rows = [row(0), row(1, status="skipped", logs="misfire: 1 fire time(s) passed"), *[row(s) for s in (2, 3, 4)]]
    assert fire_times("skip", rows).policy_mismatches == []
    assert len(fire_times("fire_all", rows).policy_mismatches) == 1


def test_a_result_applied_twice_is_counted_from_the_journal_and_from_the_web_log():
    journal = [{"event": "callback", "execution_id": "e1", "outcome": "delivered"},
               {"event": "callback", "execution_id": "e1", "outcome": "delivered"},
               {"event": "callback", "execution_id": "e2", "outcome": "delivered"},
               {"event": "callback", "execution_id": "e2", "outcome": "already_final"}]
    web_log = ('"POST /api/v1/executions/e2/callback HTTP/1.1" 200 80\n'
               '"POST /api/v1/executions/e2/callback HTTP/1.1" 200 80\n'
               '"POST /api/v1/executions/e1/callback HTTP/1.1" 409 120\n')
    result = new_audit()
    harness._check_callbacks(result, journal, web_log, [])
    assert [entry.split()[0] for entry in result.applied_twice_journal] == ["e1"]
    assert [entry.split()[0] for entry in result.applied_twice_web] == ["e2"]


def test_an_attempt_started_twice_is_duplicate_work_for_retries_too():
    key = {"task_id": "t", "scheduled_time": "2030-01-01T12:00:00Z"}
    journal = [{"event": "execute", "execution_id": "a", "retry_count": 0, **key},
               {"event": "execute", "execution_id": "b", "retry_count": 0, **key},
               {"event": "execute", "execution_id": "c", "retry_count": 1, **key},
               {"event": "execute", "execution_id": "d", "retry_count": 2, **key},
               {"event": "start", "execution_id": "a"}, {"event": "start", "execution_id": "b"},
               {"event": "start", "execution_id": "c"}, {"event": "start", "execution_id": "d"},
               {"event": "start", "execution_id": "d"}]
    result = new_audit()
    harness._check_runs(result, journal)
    assert sorted(result.duplicate_runs) == ["('t', '2030-01-01T12:00:00Z', 0) started 2 times",
                                             "('t', '2030-01-01T12:00:00Z', 2) started 2 times",
                                             "execution d started 2 times"]


def test_each_shard_of_a_broadcast_fire_is_an_attempt_of_its_own():
    key = {"task_id": "t", "scheduled_time": "2030-01-01T12:00:00Z", "retry_count": 0}
    journal = [{"event": "execute", "execution_id": "s0", "shard_index": 0, **key},
               {"event": "execute", "execution_id": "s1", "shard_index": 1, **key},
               {"event": "execute", "execution_id": "s1-again", "shard_index": 1, **key},
               {"event": "start", "execution_id": "s0"}, {"event": "start", "execution_id": "s1"},
               {"event": "start", "execution_id": "s1-again"}]
    result = new_audit()
    harness._check_runs(result, journal)
    assert result.duplicate_runs == ["('t', '2030-01-01T12:00:00Z', 0, 'shard 1') started 2 times"]


def test_a_success_refused_before_its_deadline_is_lost_work_unless_a_retry_replaced_it():
    deadline = T0 + timedelta(seconds=30)
    on_time, late = deadline.timestamp() - 1, deadline.timestamp() + 1
    rows = [row(0, status="timeout", deadline=deadline),  # refused within its deadline: lost work
            row(1, status="failed", deadline=deadline),  # lost, retried: superseded
            row(1, status="pending", retry=1, retry_of_id="e1-0"),
            row(2, status="timeout", deadline=deadline),  # finished past its deadline: the timeout rule
            row(3, status="success", deadline=deadline),  # handed over through /status: applied
            row(4, status="timeout", deadline=deadline)]  # result lost on purpose: never sent
    journal = []
    for execution_id, ended, outcome in [("e0-0", on_time, "already_final"), ("e1-0", on_time, "already_final"),
                                         ("e2-0", late, "already_final"), ("e3-0", on_time, "dropped"),
                                         ("e4-0", on_time, None)]:
        journal.append({"event": "end", "execution_id": execution_id, "outcome": "success", "t": ended})
        if outcome:
            journal += [{"event": "callback", "execution_id": execution_id, "status": "success", "outcome": "retry"},
                        {"event": "callback", "execution_id": execution_id, "status": "success", "outcome": outcome}]
    result = new_audit()

    harness._check_refused_successes(result, journal, rows)

    assert [entry.split()[0] for entry in result.refused_successes] == ["e0-0"]
    assert [entry.split()[0] for entry in result.superseded_successes] == ["e1-0"]
    assert result.problems == [f"successes within their deadline refused (lost work): 1, e.g. "
                               f"{result.refused_successes}"]


def test_a_run_past_its_deadline_plus_grace_is_stuck():
    now = T0 + timedelta(seconds=10)
    rows = [row(0, status="running", deadline=T0 + timedelta(seconds=9, milliseconds=400)),
            row(1, status="running", deadline=T0 + timedelta(seconds=9, milliseconds=600)),
            row(2, status="success")]
    result = new_audit()
    harness._check_stuck(result, rows, now, timedelta(milliseconds=500))
    assert len(result.non_terminal) == 2 and len(result.stuck) == 1


def test_overlapping_sequential_runs_are_found():
    def ran(second: int, start: float, end: float) -> dict:
        return row(second, start_time=T0 + timedelta(seconds=start), end_time=T0 + timedelta(seconds=end))

    result = new_audit()
    rows = [ran(0, 0.0, 1.0), ran(1, 1.0, 2.5), ran(2, 2.4, 3.0)]
    harness._check_sequential(result, {"t": task(mode="sequential")}, rows, [])
    assert result.sequential_overlaps == ["t-fire_once: e1-0 / e2-0"]


def test_retry_chains_must_stop_at_max_retry_and_not_go_missing():
    attempts = [row(0, status="failed"), row(0, status="failed", retry=1),  # max_retry 1: complete
                row(1, status="timeout"),  # a retry was owed
                row(2, status="success"), row(2, status="success", retry=1)]  # a retry after a success
    result = new_audit()
    harness._check_retries(result, {"t": SimpleNamespace(name="t", max_retry=1)}, attempts)
    assert len(result.lost_retries) == 1 and "attempt 0 timeout" in result.lost_retries[0]
    assert len(result.extra_retries) == 1 and "2030-01-01T12:00:02" in result.extra_retries[0]
    assert len(result.problems) == 2


def test_an_execution_whose_handler_began_on_two_executors_is_found():
    result = new_audit()
    start = {"event": "start", "execution_id": "e1"}
    harness._check_started_on_two(result, {"a": [start], "b": [start, {"event": "start", "execution_id": "e2"}]})
    assert result.started_on_two == ["execution e1 started on a, b"] and result.problems


def test_a_run_fired_ahead_and_never_sent_may_be_skipped_under_fire_once():
    note = "misfire: 1 fire time(s) passed while no scheduler was leading (policy fire_once): created ahead, " \
           "due 2030-01-01 12:00:02 UTC, never sent"
    result = fire_times("fire_once", [row(0), row(1), row(2, status="skipped", logs=note), row(3), row(4)])
    assert result.accounted[harness.FIRED_AHEAD_FOLDED] == 1 and result.policy_mismatches == []


def test_recovery_is_measured_from_the_signal_to_the_next_dispatch_and_the_largest_gap_is_reported():
    began = 1000.0
    journal = [{"event": "execute", "t": began + t} for t in (0.0, 0.5, 1.0, 7.5, 8.0)]
    freeze = harness.Disruption(at=1.2, kind="SIGSTOP", node="s1", wall=began + 1.2, frozen_for=3.0)
    result = Audit(seed=0, seconds=10, disruptions=[freeze], gap_limit=6.0)

    harness._check_dispatch_gaps(result, journal, (began, began + 10))

    assert freeze.to_dispatch == pytest.approx(6.3)
    assert (result.largest_dispatch_gap, result.largest_gap_at) == (6.5, 1.0)
    assert result.problems == ["dispatch gaps over 6 s: 1, e.g. ['6.50 s at t=1.0 s']"]
