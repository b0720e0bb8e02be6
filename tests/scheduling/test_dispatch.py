"""dispatch_pending and sweep_timeouts against the database, with executors replaced by a fake transport."""

import random
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext

from executions.choices import ExecutionStatus
from executions.models import TaskExecution
from executions.services import transition_many
from executors.choices import ExecutorStatus
from executors.client import Unreachable
from executors.models import Executor
from loadbalance.models import LoadBalanceState
from loadbalance.services import Rankings
from scheduling.dispatch import QUEUED_PER_WORKER, Dispatcher
from scheduling.firing import fire_due
from tasks.models import TaskExecutor
from tests.scheduling.conftest import T0
from tests.scheduling.fakes import dispatch, make_dispatcher, only_execution
from tests.scheduling.loopback_executor import LoopbackExecutor

pytestmark = pytest.mark.django_db(transaction=True)


def test_pending_execution_is_claimed_and_posted(make_task, make_executor, dispatcher, transport, clock):
    task = make_task(parameters={"x": 1}, timeout_seconds=30)
    executor = make_executor(tasks=[task])
    fire_due(T0)
    assert dispatch(dispatcher, T0) == 1
    execution = only_execution(task)
    assert execution.status == ExecutionStatus.RUNNING and execution.executor_id == executor.pk
    assert execution.start_time == clock.now and execution.deadline == clock.now + timedelta(seconds=30)
    [(url, payload)] = transport.calls
    assert url == executor.base_url + "/execute"
    assert (execution.attempt, execution.accept_by) == (1, clock.now + timedelta(seconds=5))
    assert execution.lease_until == execution.accept_by + timedelta(seconds=15)
    assert payload == {
        "execution_id": execution.pk, "attempt": 1, "accept_by": "2030-01-01T12:00:05Z", "lease_seconds": 15.0,
        "renew_seconds": 5.0, "task_id": task.pk, "task_name": task.name, "parameters": {"x": 1},
        "timeout_seconds": 30, "retry_count": 0, "scheduled_time": "2030-01-01T12:00:00Z",
        "callback_url": f"http://127.0.0.1:8000/api/v1/executions/{execution.pk}/callback",
    }


def test_refusing_executor_fails_over_to_the_next(make_task, make_executor, dispatcher, transport):
    task = make_task(load_balance_strategy="sticky")
    down = make_executor(tasks=[task], priority=0)
    up = make_executor(tasks=[task], priority=1)
    transport.answers[down.base_url] = Unreachable("ConnectionRefusedError", maybe_received=False)
    fire_due(T0)
    dispatch(dispatcher, T0)
    execution = only_execution(task)
    assert execution.status == ExecutionStatus.RUNNING and execution.executor_id == up.pk
    assert [url for url, _ in transport.calls] == [down.base_url + "/execute", up.base_url + "/execute"]
    assert LoadBalanceState.objects.get(task=task).sticky_executor_id == up.pk  # rebound to who accepted


def test_every_executor_refusing_fails_the_run_and_schedules_a_retry(make_task, make_executor, dispatcher,
                                                                      transport):
    task = make_task(max_retry=2)
    executor = make_executor(tasks=[task])
    transport.answers[executor.base_url] = 503
    fire_due(T0)
    dispatch(dispatcher, T0)
    failed, retry = TaskExecution.objects.filter(task=task).order_by("retry_count")
    assert failed.status == ExecutionStatus.FAILED and "HTTP 503" in failed.logs
    assert retry.status == ExecutionStatus.PENDING and retry.retry_count == 1 and retry.retry_of_id == failed.pk
    assert retry.dispatch_after > T0  # backoff
    assert retry.scheduled_time == failed.scheduled_time


def test_no_eligible_executor_fails_with_a_clear_reason(make_task, make_executor, dispatcher, transport):
    task = make_task(max_retry=0)
    make_executor(tasks=[task], status=ExecutorStatus.MAINTENANCE)
    make_executor(tasks=[task], is_healthy=False)
    fire_due(T0)
    dispatch(dispatcher, T0)
    execution = only_execution(task)
    assert execution.status == ExecutionStatus.FAILED
    assert "no eligible executor: 2 assigned, none online and healthy" in execution.logs
    assert transport.calls == []


def test_round_robin_alternates_between_executors(make_task, make_executor, dispatcher, transport):
    task = make_task()
    first, second = make_executor(tasks=[task]), make_executor(tasks=[task])
    for second_offset in range(4):
        now = T0 + timedelta(seconds=second_offset)
        fire_due(now)
        dispatch(dispatcher, now)
    urls = [url.rsplit("/", 1)[0] for url, _ in transport.calls]
    assert urls == [first.base_url, second.base_url, first.base_url, second.base_url]


def test_sequential_task_waits_for_the_running_one(make_task, make_executor, dispatcher, transport):
    task = make_task(execution_mode="sequential")
    make_executor(tasks=[task])
    fire_due(T0)
    dispatch(dispatcher, T0)
    fire_due(T0 + timedelta(seconds=1))
    assert dispatch(dispatcher, T0 + timedelta(seconds=1)) == 0
    assert len(transport.calls) == 1
    TaskExecution.objects.filter(status=ExecutionStatus.RUNNING).update(status=ExecutionStatus.SUCCESS)
    assert dispatch(dispatcher, T0 + timedelta(seconds=1)) == 1
    assert len(transport.calls) == 2


def test_retry_is_not_dispatched_before_its_backoff(make_task, make_executor, dispatcher, transport):
    task = make_task(max_retry=1)
    executor = make_executor(tasks=[task])
    transport.answers[executor.base_url] = 500
    fire_due(T0)
    dispatch(dispatcher, T0)
    retry = TaskExecution.objects.get(task=task, retry_count=1)
    assert dispatch(dispatcher, retry.dispatch_after - timedelta(milliseconds=1)) == 0
    transport.answers[executor.base_url] = 202
    assert dispatch(dispatcher, retry.dispatch_after) == 1
    retry.refresh_from_db()
    assert retry.status == ExecutionStatus.RUNNING


def test_overdue_running_execution_times_out_and_the_executor_is_stopped(
    make_task, make_executor, dispatcher, transport, clock, settings
):
    settings.SCHEDULER = {**settings.SCHEDULER, "TIMEOUT_GRACE_SECONDS": 5}
    task = make_task(timeout_seconds=10, max_retry=0)
    make_executor(tasks=[task])
    fire_due(T0)
    dispatch(dispatcher, T0)
    assert dispatcher.sweep_timeouts(T0 + timedelta(seconds=15)) == 0  # within the grace
    assert dispatcher.sweep_timeouts(T0 + timedelta(seconds=15, milliseconds=1)) == 1
    dispatcher.pool.shutdown(wait=True)
    execution = only_execution(task)
    assert execution.status == ExecutionStatus.TIMEOUT and "timed out" in execution.logs
    assert execution.duration_ms == 15_001


# --- over real HTTP: signing, the address guard, redirects ----------------------------------------------


@pytest.fixture
def loopback():
    server = LoopbackExecutor()
    yield server
    server.close()


@pytest.fixture
def http_dispatcher(clock):
    instance = Dispatcher(clock=clock, workers=2)  # the real transport
    yield instance
    instance.shutdown()


def test_dispatch_is_signed_with_the_target_executors_secret(make_task, make_executor, http_dispatcher, loopback):
    task = make_task()
    executor = make_executor(tasks=[task], base_url=loopback.url)
    make_executor(name="other")  # another secret, which must not be the one used
    fire_due(T0)
    dispatch(http_dispatcher, T0)
    [request] = loopback.received
    assert (request.method, request.target) == ("POST", "/execute")
    assert request.signature_problem(executor.secret) is None
    assert only_execution(task).status == ExecutionStatus.RUNNING


def test_dispatch_refuses_a_name_resolving_to_the_metadata_address_and_fails_over(
    make_task, make_executor, http_dispatcher, loopback, fake_dns, caplog
):
    fake_dns["metadata.example"] = ["169.254.169.254"]
    fake_dns["good.example"] = ["127.0.0.1"]
    task = make_task(load_balance_strategy="sticky")
    make_executor(tasks=[task], priority=0, base_url=f"http://metadata.example:{loopback.port}")
    good = make_executor(tasks=[task], priority=1, base_url=f"http://good.example:{loopback.port}")
    fire_due(T0)
    dispatch(http_dispatcher, T0)
    assert only_execution(task).executor_id == good.pk
    [request] = loopback.received  # nothing was sent towards the refused address
    assert request.headers["Host"] == f"good.example:{loopback.port}"  # connected to the checked IP, by name
    assert "not sent: SSRF guard: metadata.example: 169.254.169.254 is a link-local" in caplog.text


def test_one_forbidden_address_among_several_refuses_the_name(make_task, make_executor, http_dispatcher, loopback,
                                                             fake_dns):
    fake_dns["mixed.example"] = ["127.0.0.1", "::ffff:169.254.169.254"]
    task = make_task(max_retry=0)
    make_executor(tasks=[task], base_url=f"http://mixed.example:{loopback.port}")
    fire_due(T0)
    dispatch(http_dispatcher, T0)
    execution = only_execution(task)
    assert execution.status == ExecutionStatus.FAILED
    assert "not sent: SSRF guard: mixed.example" in execution.logs and loopback.received == []


def test_the_allowlist_refuses_addresses_outside_it_at_dispatch(make_task, make_executor, http_dispatcher, loopback,
                                                               settings):
    task = make_task(max_retry=0)
    make_executor(tasks=[task], base_url=loopback.url)
    settings.SCHEDULER_EXECUTOR_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    fire_due(T0)
    dispatch(http_dispatcher, T0)
    assert "outside SCHEDULER_EXECUTOR_ALLOWED_NETWORKS" in only_execution(task).logs
    assert loopback.received == []


def test_a_redirect_is_a_refusal_and_is_not_followed(make_task, make_executor, http_dispatcher, loopback):
    loopback.status, loopback.location = 307, f"{loopback.url}/elsewhere"
    task = make_task(max_retry=0)
    make_executor(tasks=[task], base_url=loopback.url)
    fire_due(T0)
    dispatch(http_dispatcher, T0)
    assert "answered HTTP 307" in only_execution(task).logs
    assert [request.target for request in loopback.received] == ["/execute"]


# --- one ranking pass per step ------------------------------------------------------------------------


def fire_seconds(count):
    for second in range(count):
        fire_due(T0 + timedelta(seconds=second))
    return T0 + timedelta(seconds=count - 1)


def test_round_robin_alternates_within_one_step(make_task, make_executor, dispatcher):
    task = make_task()
    first, second = make_executor(tasks=[task]), make_executor(tasks=[task])
    assert dispatch(dispatcher, fire_seconds(4)) == 4
    chosen = list(TaskExecution.objects.filter(task=task).order_by("scheduled_time").values_list("executor_id",
                                                                                                  flat=True))
    assert chosen == [first.pk, second.pk, first.pk, second.pk]
    assert LoadBalanceState.objects.get(task=task).round_robin_index == 4


def test_least_loaded_counts_the_runs_its_own_step_handed_out(make_task, make_executor, dispatcher):
    task = make_task(load_balance_strategy="least_loaded")
    make_executor(tasks=[task]), make_executor(tasks=[task])
    dispatch(dispatcher, fire_seconds(4))
    per_executor = TaskExecution.objects.values("executor_id").annotate(n=Count("id")).values_list("n", flat=True)
    assert sorted(per_executor) == [2, 2]


def test_ranking_state_is_written_only_when_it_changed(make_task, make_executor):
    task = make_task(load_balance_strategy="random")
    only = make_executor(tasks=[task])
    first = Rankings([task], random.Random(1))
    assert first.rank(task).executors == [only]
    assert first.save(T0) == 0  # one executor, random order: nothing to remember, not even a first row
    assert not LoadBalanceState.objects.exists()
    other = make_executor(tasks=[task], name="other", instance_id="other")
    again = Rankings([task], random.Random(1))
    again.rank(task)
    assert again.save(T0) == 0  # random over two remembers nothing either
    rotating = make_task(load_balance_strategy="round_robin")
    make_executor(tasks=[rotating]), TaskExecutor.objects.create(task=rotating, executor=other)
    third = Rankings([rotating], random.Random(1))
    third.rank(rotating)
    assert third.save(T0) == 1  # round robin over two: its index is remembered


def test_a_step_ranks_many_tasks_with_a_fixed_number_of_queries(make_task, make_executor, dispatcher,
                                                                django_assert_max_num_queries):
    tasks = [make_task() for _ in range(20)]
    make_executor(tasks=tasks), make_executor(tasks=tasks)
    fire_due(T0)
    # The pending rows, assignments and states, one transaction writing the states, then the claim's
    # transaction (fenced by the engine; a savepoint and its release here).
    with django_assert_max_num_queries(10):
        assert dispatcher.dispatch_pending(T0) == 20
    assert dispatcher.wait_idle(10)
    assert LoadBalanceState.objects.filter(task__in=tasks, round_robin_index=1).count() == 20


def test_a_step_claims_no_more_than_its_workers_can_start_soon(make_task, make_executor, clock, transport):
    tasks = [make_task() for _ in range(QUEUED_PER_WORKER + 4)]
    make_executor(tasks=tasks)
    fire_due(T0)
    single = make_dispatcher(clock, transport, workers=1)
    try:
        assert single.dispatch_pending(T0) == QUEUED_PER_WORKER
        assert single.wait_idle(10)
    finally:
        single.shutdown()
    assert TaskExecution.objects.filter(status=ExecutionStatus.PENDING).count() == 4


def test_a_run_stopped_before_the_claim_is_left_alone(make_task):
    tasks = [make_task() for _ in range(3)]
    fire_due(T0)
    ids = list(TaskExecution.objects.filter(task__in=tasks).values_list("pk", flat=True))
    TaskExecution.objects.filter(pk=ids[0]).update(status=ExecutionStatus.CANCELLED)
    claimed = transition_many(ids, ExecutionStatus.RUNNING, expected=ExecutionStatus.PENDING, start_time=T0)
    assert claimed == set(ids[1:])
    assert TaskExecution.objects.get(pk=ids[0]).status == ExecutionStatus.CANCELLED


def test_round_robin_state_of_many_tasks_is_saved_by_one_step(make_task, make_executor):
    tasks = [make_task() for _ in range(3)]
    make_executor(tasks=tasks), make_executor(tasks=tasks)
    for _ in range(2):
        rankings = Rankings(tasks, random.Random(1))
        for task in tasks:
            rankings.rank(task)
        assert rankings.save(T0) == 3
    assert sorted(LoadBalanceState.objects.values_list("round_robin_index", flat=True)) == [2, 2, 2]


def test_new_tasks_whose_strategy_state_did_not_move_get_no_state_row(make_task, make_executor):
    """A burst of new one-shots over one executor: round robin over one candidate keeps the initial state, so
    nothing is written; a task with two executors moves and gets its row."""
    alone = [make_task() for _ in range(3)]
    shared = make_task()
    make_executor(tasks=[*alone, shared]), make_executor(tasks=[shared])
    rankings = Rankings([*alone, shared], random.Random(1))
    for task in [*alone, shared]:
        rankings.rank(task)
    assert rankings.save(T0) == 1
    assert list(LoadBalanceState.objects.values_list("task_id", flat=True)) == [shared.pk]


AHEAD = timedelta(seconds=2)


@pytest.fixture
def staging_dispatcher(clock, transport):
    instance = make_dispatcher(clock, transport, stage_ahead=AHEAD)
    yield instance
    instance.shutdown()


def test_runs_fired_ahead_are_staged_then_posted_when_due(make_task, make_executor, staging_dispatcher,
                                                         transport):
    task = make_task(next_run_time=T0 + timedelta(seconds=1))
    make_executor(tasks=[task])
    fire_due(T0, ahead=timedelta(seconds=1))  # one run, at T0 + 1 s
    assert staging_dispatcher.dispatch_pending(T0) == 0
    assert staging_dispatcher.next_due() == T0 + timedelta(seconds=1)
    assert not transport.calls and set(TaskExecution.objects.values_list("status", flat=True)) == {"pending"}
    assert dispatch(staging_dispatcher, T0 + timedelta(seconds=1)) == 1
    [(url, payload)] = transport.calls
    assert payload["scheduled_time"] == "2030-01-01T12:00:01Z"
    assert only_execution(task).status == ExecutionStatus.RUNNING
    assert staging_dispatcher.next_due() is None


def test_runs_prepared_on_the_firing_thread_are_staged_once_and_posted_when_due(make_task, make_executor,
                                                                                staging_dispatcher, transport):
    """Staging in two halves (``prepare_staged`` where the runs were fired, ``add_staged`` on the loop thread):
    a run the scan staged in between is kept as staged, not replaced or staged twice."""
    tasks = [make_task(next_run_time=T0 + timedelta(seconds=1)) for _ in range(2)]
    make_executor(tasks=tasks)
    written = []
    fire_due(T0, ahead=timedelta(seconds=1), on_written=written.extend)
    items = staging_dispatcher.prepare_staged(written, T0)
    assert len(items) == 2 and all(item.request is not None for item in items)  # ranked and signed already
    assert staging_dispatcher.next_due() is None  # nothing staged until the loop thread adds them

    staging_dispatcher.staging._stage_rows([item.execution for item in items[:1]], T0)  # the scan came first
    kept = staging_dispatcher.staging._staged[items[0].execution.pk]
    staging_dispatcher.add_staged(items, T0)
    assert staging_dispatcher.staging._staged[items[0].execution.pk] is kept

    assert dispatch(staging_dispatcher, T0 + timedelta(seconds=1)) == 2
    assert sorted(payload["execution_id"] for _, payload in transport.calls) == sorted(
        item.execution.pk for item in items)


def test_runs_fired_beyond_the_stage_window_are_held_then_staged_and_posted_when_due(make_task, make_executor,
                                                                                     clock, transport):
    """Fired 5 s ahead, prepared at once: held aside (the staged set every step walks stays what is due within
    2 s), staged once within it, posted at its time; ``forget`` drops the held ones too."""
    dispatcher = make_dispatcher(clock, transport, stage_ahead=AHEAD, hold_ahead=timedelta(seconds=5))
    try:
        task = make_task(next_run_time=T0 + timedelta(seconds=5))
        make_executor(tasks=[task])
        written = []
        fire_due(T0, ahead=timedelta(seconds=5), on_written=written.extend)
        dispatcher.add_staged(dispatcher.prepare_staged(written, T0), T0)
        [run] = written
        assert run.pk in dispatcher.staging and dispatcher.next_due() is None  # held, not staged
        dispatcher.dispatch_pending(T0 + timedelta(seconds=3))  # within 2 s now: promoted
        assert dispatcher.next_due() == T0 + timedelta(seconds=5) - dispatcher.staging.claim_ahead
        assert dispatch(dispatcher, T0 + timedelta(seconds=5)) == 1
        assert [payload["execution_id"] for _, payload in transport.calls] == [run.pk]

        later = make_task(next_run_time=T0 + timedelta(seconds=10))
        make_executor(tasks=[later])
        written.clear()
        fire_due(T0 + timedelta(seconds=5), ahead=timedelta(seconds=5), on_written=written.extend)
        dispatcher.add_staged(dispatcher.prepare_staged(written, T0 + timedelta(seconds=5)), T0 + timedelta(seconds=5))
        assert all(row.pk in dispatcher.staging for row in written)
        dispatcher.forget_staged()
        assert not any(row.pk in dispatcher.staging for row in written)
    finally:
        dispatcher.shutdown()


def test_a_staged_run_cancelled_before_its_time_is_not_posted(make_task, make_executor, staging_dispatcher,
                                                              transport):
    from tasks.services import task_pause

    task = make_task(next_run_time=T0 + timedelta(seconds=1))
    make_executor(tasks=[task])
    fire_due(T0, ahead=timedelta(seconds=1))  # one run, at T0 + 1 s
    staging_dispatcher.dispatch_pending(T0)
    task_pause(task_id=task.pk, now=T0)
    dispatch(staging_dispatcher, T0 + timedelta(seconds=1))
    assert not transport.calls and only_execution(task).status == ExecutionStatus.CANCELLED


def test_sequential_runs_are_not_staged(make_task, make_executor, staging_dispatcher, transport):
    task = make_task(execution_mode="sequential")
    make_executor(tasks=[task])
    fire_due(T0)
    TaskExecution.objects.update(dispatch_after=T0 + timedelta(seconds=1))  # e.g. a retry waiting out its backoff
    staging_dispatcher.dispatch_pending(T0)
    assert staging_dispatcher.next_due() is None
    assert dispatch(staging_dispatcher, T0 + timedelta(seconds=1)) == 1  # found when due, as before


def test_a_leader_that_steps_down_forgets_what_it_staged(make_task, make_executor, staging_dispatcher):
    task = make_task(next_run_time=T0 + timedelta(seconds=1))
    make_executor(tasks=[task])
    fire_due(T0, ahead=timedelta(seconds=1))  # one run, at T0 + 1 s
    staging_dispatcher.dispatch_pending(T0)
    staging_dispatcher.forget_staged()
    assert staging_dispatcher.next_due() is None



def test_runs_the_leader_fires_ahead_are_staged_as_written_without_reading_them_back(
        make_task, make_executor, staging_dispatcher):
    task = make_task(next_run_time=T0 + timedelta(seconds=1))
    make_executor(tasks=[task])
    written = []
    fire_due(T0, ahead=timedelta(seconds=1), on_written=written.extend)
    with CaptureQueriesContext(connection) as queries:
        staging_dispatcher.stage(written, T0)
    assert staging_dispatcher.next_due() == T0 + timedelta(seconds=1)
    assert not [q["sql"] for q in queries.captured_queries if 'FROM "task_executions"' in q["sql"].replace("`", '"')]


def test_the_database_is_searched_for_runs_to_stage_at_most_once_a_second(make_task, make_executor,
                                                                         staging_dispatcher):
    task = make_task(next_run_time=T0 + timedelta(seconds=2))
    make_executor(tasks=[task])
    staging_dispatcher.dispatch_pending(T0)  # searched: nothing yet
    fire_due(T0, ahead=AHEAD)  # e.g. another leader's fire
    staging_dispatcher.dispatch_pending(T0 + timedelta(milliseconds=500))
    assert staging_dispatcher.next_due() is None  # not searched again within the second
    staging_dispatcher.dispatch_pending(T0 + timedelta(seconds=1))
    assert staging_dispatcher.next_due() == T0 + timedelta(seconds=2)


CLAIM_AHEAD = timedelta(milliseconds=500)


@pytest.fixture
def claiming_dispatcher(clock, transport):
    instance = make_dispatcher(clock, transport, stage_ahead=AHEAD, claim_ahead=CLAIM_AHEAD)
    yield instance
    instance.shutdown()


def staged_run_at_t0_plus_1s(make_task, make_executor, dispatcher, **fields):
    task = make_task(next_run_time=T0 + timedelta(seconds=1), **fields)
    executor = make_executor(tasks=[task])
    fire_due(T0, ahead=timedelta(seconds=1))
    dispatcher.dispatch_pending(T0)
    return task, executor


def test_a_staged_run_is_claimed_ahead_of_its_time_and_posted_at_it(make_task, make_executor, claiming_dispatcher,
                                                                    transport, clock):
    task, executor = staged_run_at_t0_plus_1s(make_task, make_executor, claiming_dispatcher, timeout_seconds=30)
    assert only_execution(task).status == ExecutionStatus.PENDING  # due in 1 s: not within the claim horizon
    assert claiming_dispatcher.next_due() == T0 + timedelta(seconds=1) - CLAIM_AHEAD

    clock.now = T0 + timedelta(milliseconds=600)
    assert claiming_dispatcher.dispatch_pending(clock.now) == 0
    execution = only_execution(task)
    assert execution.status == ExecutionStatus.RUNNING and execution.executor_id == executor.pk
    # Its timeout counts from its time, not from the claim.
    assert execution.start_time == T0 + timedelta(seconds=1)
    assert execution.deadline == T0 + timedelta(seconds=31)
    # Read again 50 ms before its time (a stop may have ended it since the claim), then POSTed at it.
    assert not transport.calls and claiming_dispatcher.next_due() == T0 + timedelta(milliseconds=950)
    recheck = 'SELECT "task_executions"."id" AS "pk", "task_executions"."attempt" AS "attempt" FROM'
    clock.now = T0 + timedelta(milliseconds=955)
    with CaptureQueriesContext(connection) as queries:
        assert claiming_dispatcher.dispatch_pending(clock.now) == 0
    assert len([q for q in queries.captured_queries if q["sql"].replace("`", '"').startswith(recheck)]) == 1
    assert not transport.calls and claiming_dispatcher.next_due() == T0 + timedelta(seconds=1)

    clock.now = T0 + timedelta(seconds=1, milliseconds=20)  # the POSTs leave a few milliseconds after their time
    with CaptureQueriesContext(connection) as queries:
        assert dispatch(claiming_dispatcher, clock.now) == 1
    assert [payload["execution_id"] for _, payload in transport.calls] == [execution.pk]
    # The POST, neither read again (done already) nor updated (it started at its time, which its row says).
    sql = [q["sql"].replace("`", '"') for q in queries.captured_queries]
    assert [statement for statement in sql if statement.startswith(("UPDATE", recheck))] == []
    execution = only_execution(task)
    assert execution.status == ExecutionStatus.RUNNING and claiming_dispatcher.next_due() is None
    assert execution.start_time == T0 + timedelta(seconds=1)


def test_a_run_claimed_ahead_and_sent_late_records_when_it_left(make_task, make_executor, claiming_dispatcher,
                                                                 transport, clock):
    task, _ = staged_run_at_t0_plus_1s(make_task, make_executor, claiming_dispatcher, timeout_seconds=30)
    clock.now = T0 + timedelta(milliseconds=600)
    claiming_dispatcher.dispatch_pending(clock.now)

    clock.now = T0 + timedelta(seconds=2)  # the leader stalled for a second
    with CaptureQueriesContext(connection) as queries:
        assert dispatch(claiming_dispatcher, clock.now) == 1
    assert len(transport.calls) == 1
    # The POST, then one UPDATE recording when it left: its start_time is when it was sent, not its time.
    assert len([q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]) == 1
    execution = only_execution(task)
    assert execution.start_time == T0 + timedelta(seconds=2)
    assert execution.deadline == T0 + timedelta(seconds=31)  # still counted from its time


def test_a_leader_stepping_down_hands_back_the_runs_it_claimed_and_never_sent(make_task, make_executor, clock,
                                                                             claiming_dispatcher, transport):
    task, executor = staged_run_at_t0_plus_1s(make_task, make_executor, claiming_dispatcher)
    claiming_dispatcher.dispatch_pending(T0 + timedelta(milliseconds=600))
    assert only_execution(task).status == ExecutionStatus.RUNNING
    claiming_dispatcher.forget_staged()
    execution = only_execution(task)
    assert execution.status == ExecutionStatus.PENDING
    assert (execution.executor_id, execution.start_time, execution.deadline) == (None, None, None)

    successor = make_dispatcher(clock, transport)
    try:
        clock.now = T0 + timedelta(seconds=1)
        assert dispatch(successor, clock.now) == 1
    finally:
        successor.shutdown()
    assert len(transport.calls) == 1 and only_execution(task).status == ExecutionStatus.RUNNING


def test_a_run_claimed_ahead_then_stopped_is_not_handed_back(make_task, make_executor, claiming_dispatcher):
    task, _ = staged_run_at_t0_plus_1s(make_task, make_executor, claiming_dispatcher)
    claiming_dispatcher.dispatch_pending(T0 + timedelta(milliseconds=600))
    TaskExecution.objects.filter(task=task).update(status=ExecutionStatus.TIMEOUT)
    claiming_dispatcher.forget_staged()
    assert only_execution(task).status == ExecutionStatus.TIMEOUT


def test_a_run_paused_before_its_claim_is_neither_claimed_nor_posted(make_task, make_executor, claiming_dispatcher,
                                                                    transport):
    from tasks.services import task_pause

    task, _ = staged_run_at_t0_plus_1s(make_task, make_executor, claiming_dispatcher)
    task_pause(task_id=task.pk, now=T0)
    claiming_dispatcher.dispatch_pending(T0 + timedelta(milliseconds=600))
    assert claiming_dispatcher.next_due() is None
    dispatch(claiming_dispatcher, T0 + timedelta(seconds=1))
    assert not transport.calls and only_execution(task).status == ExecutionStatus.CANCELLED


def test_claims_ahead_stop_at_what_the_workers_may_have_in_flight(make_task, make_executor, clock, transport):
    small = make_dispatcher(clock, transport, workers=1, stage_ahead=AHEAD, claim_ahead=CLAIM_AHEAD)
    try:
        tasks = [make_task(next_run_time=T0 + timedelta(seconds=1)) for _ in range(QUEUED_PER_WORKER + 3)]
        make_executor(tasks=tasks)
        fire_due(T0, ahead=timedelta(seconds=1))
        small.dispatch_pending(T0)
        small.dispatch_pending(T0 + timedelta(milliseconds=600))
        statuses = TaskExecution.objects.values("status").annotate(n=Count("id"))
        assert {row["status"]: row["n"] for row in statuses} == {"running": QUEUED_PER_WORKER, "pending": 3}
    finally:
        small.shutdown()


def test_an_executor_back_since_the_run_was_staged_takes_it_when_the_ranked_ones_refuse(
        make_task, make_executor, claiming_dispatcher, transport, clock):
    """A run is ranked when it is staged, up to stage_ahead before its time. The deployment test saw an
    executor restart meanwhile: the only one ranked refused when the run was due, and the run failed,
    although the other had come back and was taking work."""
    task = make_task(next_run_time=T0 + timedelta(seconds=1))
    restarting = make_executor(tasks=[task], status=ExecutorStatus.OFFLINE)
    ranked = make_executor(tasks=[task])
    fire_due(T0, ahead=timedelta(seconds=1))
    claiming_dispatcher.dispatch_pending(T0)  # staged, ranked to the one executor online
    Executor.objects.filter(pk=restarting.pk).update(status=ExecutorStatus.ONLINE)  # registered again
    transport.answers[ranked.base_url] = 503  # shutting down: it refuses new work

    for now in (T0 + timedelta(milliseconds=800), T0 + timedelta(milliseconds=955), T0 + timedelta(seconds=1)):
        clock.now = now
        dispatch(claiming_dispatcher, now)

    assert [url.rsplit("/", 1)[0] for url, _ in transport.calls] == [ranked.base_url, restarting.base_url]
    execution = only_execution(task)
    assert (execution.status, execution.executor_id, execution.attempt) == ("running", restarting.pk, 2)
