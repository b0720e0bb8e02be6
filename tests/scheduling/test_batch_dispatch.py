"""Batched dispatch: an executor that declared ``execute_batch_limit`` gets the runs launched together in
POST /execute/batch, each run then going on as if it had been sent alone (executors are fakes here; the SDK's
side and a real exchange are in tests/sdk/test_execute_batch.py)."""

import json
from concurrent.futures import Future
from datetime import timedelta

import pytest

from executions.choices import ExecutionStatus
from executions.models import TaskExecution
from executors.client import Answer, Unreachable
from scheduling import delivery
from scheduling.delivery import BatchItem, _batch_refusals, _batches
from scheduling.firing import fire_due
from tests.scheduling.conftest import T0
from tests.scheduling.fakes import Executors, dispatch, posts

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def transport():
    return Executors()


def batch_posts(transport) -> list[tuple[str, list[dict]]]:
    return [(url, payload["executions"]) for url, payload in transport.calls if url.endswith("/execute/batch")]


def fired(make_task, n: int, **fields) -> list:
    tasks = [make_task(**fields) for _ in range(n)]
    fire_due(T0)
    return tasks


def test_runs_for_a_batch_executor_leave_in_one_request_with_each_runs_execute_body(
        make_task, make_executor, dispatcher, transport, clock):
    tasks = fired(make_task, 3, parameters={"x": 1})
    executor = make_executor(tasks=tasks, execute_batch_limit=100)
    assert dispatch(dispatcher, T0) == 3
    [(url, items)] = batch_posts(transport)
    assert url == executor.base_url + "/execute/batch" and posts(transport) == []
    runs = {run.pk: run for run in TaskExecution.objects.all()}
    assert sorted(item["execution_id"] for item in items) == sorted(runs)
    for item in items:
        run = runs[item["execution_id"]]
        assert (run.status, run.executor_id, run.attempt) == (ExecutionStatus.RUNNING, executor.pk, 1)
        assert item["attempt"] == 1 and item["accept_by"] == "2030-01-01T12:00:05Z"
        assert item["parameters"] == {"x": 1} and item["task_id"] == run.task_id
        assert item["callback_url"].endswith(f"/executions/{run.pk}/callback")


def test_an_executor_without_batches_gets_one_execute_per_run(make_task, make_executor, dispatcher, transport):
    tasks = fired(make_task, 3)
    make_executor(tasks=tasks)
    dispatch(dispatcher, T0)
    assert len(posts(transport)) == 3 and batch_posts(transport) == []


def test_a_run_refused_within_its_batch_fails_over_alone(make_task, make_executor, dispatcher, transport):
    tasks = fired(make_task, 3, load_balance_strategy="sticky")
    batching = make_executor(tasks=tasks, priority=0, execute_batch_limit=100)
    other = make_executor(tasks=tasks, priority=1)
    refused = TaskExecution.objects.get(task=tasks[1])
    transport.item_answers[refused.pk] = 503  # e.g. busy
    dispatch(dispatcher, T0)
    by_task = {run.task_id: run for run in TaskExecution.objects.all()}
    assert {by_task[task.pk].executor_id for task in (tasks[0], tasks[2])} == {batching.pk}
    moved = by_task[tasks[1].pk]
    assert (moved.status, moved.executor_id, moved.attempt) == (ExecutionStatus.RUNNING, other.pk, 2)
    assert [payload["execution_id"] for payload in posts(transport)] == [refused.pk]  # the failover, alone


def test_a_batch_answered_with_an_error_fails_every_run_over(make_task, make_executor, dispatcher, transport):
    tasks = fired(make_task, 2, load_balance_strategy="sticky")
    batching = make_executor(tasks=tasks, priority=0, execute_batch_limit=100)
    other = make_executor(tasks=tasks, priority=1)
    transport.answers[batching.base_url] = 404  # it declared batches, but has no such endpoint
    dispatch(dispatcher, T0)
    assert set(TaskExecution.objects.values_list("executor_id", "attempt")) == {(other.pk, 2)}
    assert len(posts(transport)) == 2


def test_a_run_its_batchs_answer_does_not_name_stays_unless_its_executor_says_it_does_not_hold_it(
        make_task, make_executor, dispatcher, transport):
    tasks = fired(make_task, 2, load_balance_strategy="sticky")
    batching = make_executor(tasks=tasks, priority=0, execute_batch_limit=100)
    other = make_executor(tasks=tasks, priority=1)
    held, forgotten = (TaskExecution.objects.get(task=task) for task in tasks)
    transport.item_answers[held.pk] = transport.item_answers[forgotten.pk] = None  # left out of the answer
    transport.states[batching.base_url] = {held.pk: {"execution_id": held.pk, "state": "running", "attempt": 1}}
    dispatch(dispatcher, T0)
    assert transport.slept == [pytest.approx(5 + 1)] * 2  # asked only once accept_by (+ skew) had passed
    held.refresh_from_db()
    forgotten.refresh_from_db()
    assert (held.executor_id, held.attempt) == (batching.pk, 1)  # it holds it: its lease decides
    assert (forgotten.executor_id, forgotten.attempt) == (other.pk, 2)


def test_an_unreachable_batch_executor_that_never_got_it_fails_every_run_over_at_once(
        make_task, make_executor, dispatcher, transport):
    tasks = fired(make_task, 2, load_balance_strategy="sticky")
    batching = make_executor(tasks=tasks, priority=0, execute_batch_limit=100)
    other = make_executor(tasks=tasks, priority=1)
    transport.answers[batching.base_url] = Unreachable("ConnectionRefusedError", maybe_received=False)
    dispatch(dispatcher, T0)
    assert set(TaskExecution.objects.values_list("executor_id", "attempt")) == {(other.pk, 2)}
    assert transport.slept == []


def test_batches_hold_at_most_the_declared_number_of_runs(make_task, make_executor, dispatcher, transport):
    tasks = fired(make_task, 5)
    make_executor(tasks=tasks, execute_batch_limit=2)
    dispatch(dispatcher, T0)
    assert sorted(len(items) for _, items in batch_posts(transport)) == [1, 2, 2]
    assert TaskExecution.objects.filter(status=ExecutionStatus.RUNNING).count() == 5


def test_staged_runs_due_together_leave_in_one_batch(make_task, make_executor, clock, transport):
    from tests.scheduling.fakes import make_dispatcher

    tasks = [make_task(next_run_time=T0 + timedelta(seconds=1)) for _ in range(4)]
    make_executor(tasks=tasks, execute_batch_limit=100)
    staged = make_dispatcher(clock, transport, stage_ahead=timedelta(seconds=2), claim_ahead=timedelta(seconds=1))
    try:
        fire_due(T0, ahead=timedelta(seconds=2), on_written=lambda rows: staged.stage(rows, T0))
        staged.dispatch_pending(T0)
        assert transport.calls == []  # claimed ahead, not due yet
        clock.now = T0 + timedelta(seconds=1)
        staged.dispatch_pending(clock.now)
        assert staged.wait_idle(10)
    finally:
        staged.shutdown()
    [(_, items)] = batch_posts(transport)
    assert len(items) == 4 and {item["scheduled_time"] for item in items} == {"2030-01-01T12:00:01Z"}


def test_batches_are_cut_by_size_too():
    big = BatchItem(b"x" * (delivery.BATCH_MAX_BYTES // 2))
    small = BatchItem(b"{}")
    group = [(n, None, item) for n, item in enumerate([small, big, big, small])]
    assert [[n for n, _, _ in batch] for batch in _batches(group, 100)] == [[0, 1], [2, 3]]
    assert [len(batch) for batch in _batches([(n, None, small) for n in range(1200)], 1000)] == [500, 500, 200]


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"results": "no"}', b'{"results": [{"status": 202}]}',
                                  b'{"results": [{"execution_id": "a", "status": "202"}]}', b"[" * 100_000])
def test_an_unreadable_batch_answer_leaves_each_run_unanswered(body):
    done: Future = Future()
    done.set_result(Answer(200, body))
    [refusal] = _batch_refusals(done, ["a"])
    assert refusal is not None and not refusal.answered


def test_each_run_gets_its_own_verdict_from_a_batch_answer():
    done: Future = Future()
    done.set_result(Answer(200, json.dumps({"results": [{"execution_id": "b", "status": 409, "error": "expired"},
                                                        {"execution_id": "a", "status": 200}]}).encode()))
    accepted, refused = _batch_refusals(done, ["a", "b"])
    assert accepted is None and refused.answered and "409" in refused.reason
