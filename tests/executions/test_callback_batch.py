"""POST /api/v1/executions/callbacks: an executor's results in one signed request, each under the single
callback's rules, all in one transaction."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from executions import services
from executions.models import TaskExecution
from executions.serializers import MAX_CALLBACK_BATCH
from executors.models import SeenNonce
from scheduler_project.errors import DomainError
from tests.helpers import assert_error, assert_ok

CALLBACKS = "/api/v1/executions/callbacks"


@pytest.fixture
def executor(make_executor):
    return make_executor()


@pytest.fixture
def start(executor, make_task, make_execution):
    """``start(max_retry=0, **fields)``: a running execution dispatched to ``executor``."""

    def make(max_retry: int = 0, **fields):
        fields.setdefault("status", "running")
        fields.setdefault("start_time", timezone.now() - timedelta(seconds=10))
        return make_execution(task=make_task(max_retry=max_retry), executor=executor, **fields)

    return make


def post(signed, executor, *results, **kwargs):
    return signed.post(CALLBACKS, {"results": list(results)}, executor=executor, **kwargs)


def verdicts(data) -> dict[str, tuple[str, str | None]]:
    return {item["execution_id"]: (item["outcome"], item["status"]) for item in data["results"]}


def statuses(*executions) -> list[str]:
    return [TaskExecution.objects.get(pk=execution.pk).status for execution in executions]


def test_a_batch_applies_each_result_as_a_single_callback_would(signed, executor, start):
    done, broken, flaky = start(logs="started"), start(), start(max_retry=2)
    end = done.start_time + timedelta(seconds=4)

    data = assert_ok(*post(signed, executor,
                           {"execution_id": done.pk, "status": "success", "result": {"rows": 3}, "logs": "ok",
                            "end_time": end.isoformat()},
                           {"execution_id": broken.pk, "status": "failed", "logs": "boom"},
                           {"execution_id": flaky.pk, "status": "failed"}),
                     message="执行回调处理成功")

    assert (data["applied"], data["already_final"], data["not_found"], data["not_yours"]) == (3, 0, 0, 0)
    assert [item["execution_id"] for item in data["results"]] == [done.pk, broken.pk, flaky.pk]
    assert verdicts(data)[done.pk] == ("applied", "success")
    done.refresh_from_db()
    assert (done.result, done.logs, done.end_time, done.duration_ms) == ({"rows": 3}, "started\nok", end, 4000)
    broken.refresh_from_db()
    assert (broken.status, broken.result, broken.logs) == ("failed", None, "boom")
    assert TaskExecution.objects.filter(pk=broken.pk, result__isnull=True).exists()  # SQL NULL, as finish() writes
    assert broken.duration_ms >= 10_000
    assert not TaskExecution.objects.filter(retry_of=broken).exists()  # max_retry 0
    retry = TaskExecution.objects.get(retry_of=flaky)  # a failed run with retries left: its next attempt
    assert (retry.status, retry.retry_count, retry.task_id) == ("pending", 1, flaky.task_id)


def test_results_sharing_some_values_and_not_others_each_keep_their_own(signed, executor, start):
    """The grouped UPDATE sets a column per distinct value: rows with equal values share a branch, and no row
    takes its neighbour's."""
    runs = [start(logs="started") for _ in range(5)]
    first, second = runs[0].start_time + timedelta(seconds=1), runs[0].start_time + timedelta(seconds=2)
    ends = [first, first, second, second, first]
    results = [{"n": 1}, {"n": 1}, {"n": 2}, None, {"n": 1}]
    logs = ["a", None, "a", "b", None]
    assert_ok(*post(signed, executor, *[
        {"execution_id": run.pk, "status": "success", "end_time": end.isoformat(),
         **({"result": result} if result is not None else {}), **({"logs": log} if log else {})}
        for run, end, result, log in zip(runs, ends, results, logs, strict=True)]), message="执行回调处理成功")

    for run, end, result, log in zip(runs, ends, results, logs, strict=True):
        run.refresh_from_db()
        assert (run.status, run.end_time, run.result) == ("success", end, result)
        assert run.duration_ms == int((end - run.start_time).total_seconds() * 1000)
        assert run.logs == ("started\n" + log if log else "started")


def test_an_end_before_the_start_ends_the_run_at_its_start(signed, executor, start):
    execution = start()
    too_early = execution.start_time - timedelta(minutes=5)
    assert_ok(*post(signed, executor, {"execution_id": execution.pk, "status": "success",
                                       "end_time": too_early.isoformat()}), message="执行回调处理成功")
    execution.refresh_from_db()
    assert (execution.end_time, execution.duration_ms) == (execution.start_time, 0)


def test_a_result_for_a_run_already_final_changes_nothing(signed, executor, start):
    final, running = start(status="timeout", end_time=timezone.now(), logs="swept"), start()

    data = assert_ok(*post(signed, executor, {"execution_id": final.pk, "status": "success", "logs": "late"},
                           {"execution_id": running.pk, "status": "success"}), message="执行回调处理成功")

    assert verdicts(data) == {final.pk: ("already_final", "timeout"), running.pk: ("applied", "success")}
    assert (data["applied"], data["already_final"]) == (1, 1)
    final.refresh_from_db()
    assert (final.status, final.logs) == ("timeout", "swept")


def test_a_result_sent_twice_is_applied_once(signed, executor, start):
    execution = start(max_retry=3)
    assert_ok(*post(signed, executor, {"execution_id": execution.pk, "status": "failed"}), message="执行回调处理成功")
    data = assert_ok(*post(signed, executor, {"execution_id": execution.pk, "status": "success"}),
                     message="执行回调处理成功")
    assert verdicts(data) == {execution.pk: ("already_final", "failed")}
    assert TaskExecution.objects.filter(retry_of=execution).count() == 1


def test_another_executors_execution_is_refused_and_left_alone(signed, executor, start, make_executor,
                                                                make_execution):
    theirs = make_execution(executor=make_executor(), status="running", start_time=timezone.now())
    undispatched = make_execution(status="pending")
    mine = start()

    data = assert_ok(*post(signed, executor, {"execution_id": theirs.pk, "status": "success"},
                           {"execution_id": undispatched.pk, "status": "success"},
                           {"execution_id": mine.pk, "status": "success"}), message="执行回调处理成功")

    assert verdicts(data) == {theirs.pk: ("not_yours", None), undispatched.pk: ("not_yours", None),
                              mine.pk: ("applied", "success")}
    assert data["not_yours"] == 2
    assert statuses(theirs, undispatched, mine) == ["running", "pending", "success"]


def test_an_unknown_execution_is_reported_not_found(signed, executor, start):
    mine = start()
    data = assert_ok(*post(signed, executor, {"execution_id": "ghost", "status": "success"},
                           {"execution_id": mine.pk, "status": "failed"}), message="执行回调处理成功")
    assert verdicts(data) == {"ghost": ("not_found", None), mine.pk: ("applied", "failed")}
    assert data["not_found"] == 1


@pytest.mark.parametrize("body", [
    {}, {"results": []}, {"results": {}}, {"results": [1]}, {"results": "x"},
    {"results": [{"execution_id": "ok", "status": "success"}], "extra": 1},
])
def test_a_malformed_batch_answers_400(signed, executor, body):
    assert_error(*signed.post(CALLBACKS, body, executor=executor), 400, path=CALLBACKS)


@pytest.mark.parametrize("bad_item", [
    {"status": "success"}, {"execution_id": "{id}"}, {"execution_id": "{id}", "status": "running"},
    {"execution_id": "{id}", "status": "success", "result": [1]}, {"execution_id": "{id}", "status": "success",
                                                                   "extra": 1},
    {"execution_id": 5, "status": "success"}, {"execution_id": "a\u0000b", "status": "success"},
    {"execution_id": "x" * 65, "status": "success"},
])
def test_one_malformed_result_refuses_the_whole_batch_and_applies_nothing(signed, executor, start, bad_item):
    good, other = start(), start()
    bad = {key: value.replace("{id}", other.pk) if isinstance(value, str) else value
           for key, value in bad_item.items()}
    body = assert_error(*post(signed, executor, {"execution_id": good.pk, "status": "success"}, bad), 400)
    assert body["details"]["field"].startswith("results.1")
    assert statuses(good, other) == ["running", "running"]


def test_the_same_execution_twice_in_a_batch_is_refused(signed, executor, start):
    execution, other = start(), start()
    body = assert_error(*post(signed, executor, {"execution_id": other.pk, "status": "success"},
                              {"execution_id": execution.pk, "status": "success"},
                              {"execution_id": execution.pk, "status": "failed"}), 400)
    assert body["details"]["constraint"] == "duplicate"
    assert execution.pk in body["error"]
    assert statuses(execution, other) == ["running", "running"]


def test_more_results_than_the_cap_are_refused(signed, executor, start):
    execution = start()
    results = [{"execution_id": execution.pk, "status": "success"}]
    results += [{"execution_id": f"e-{n}", "status": "success"} for n in range(MAX_CALLBACK_BATCH)]
    assert_error(*post(signed, executor, *results), 400)
    assert statuses(execution) == ["running"]


def test_exactly_the_cap_is_accepted(signed, executor, start):
    mine = start()
    results = [{"execution_id": mine.pk, "status": "success"}]
    results += [{"execution_id": f"ghost-{n}", "status": "success"} for n in range(MAX_CALLBACK_BATCH - 1)]
    data = assert_ok(*post(signed, executor, *results), message="执行回调处理成功")
    assert (data["applied"], data["not_found"]) == (1, MAX_CALLBACK_BATCH - 1)


def test_a_replayed_batch_is_refused_401_and_changes_nothing(signed, executor, start):
    execution = start(max_retry=2)
    assert_ok(*post(signed, executor, {"execution_id": execution.pk, "status": "failed"}), message="执行回调处理成功")
    TaskExecution.objects.filter(pk=execution.pk).update(status="running")  # as if the result had not been seen

    assert_error(*signed.replay(), 401, path=CALLBACKS)

    assert statuses(execution) == ["running"]
    assert TaskExecution.objects.filter(retry_of=execution).count() == 1
    assert SeenNonce.objects.count() == 1


def test_an_unsigned_batch_is_refused_401(anon_api, start):
    execution = start()
    assert_error(*anon_api.post(CALLBACKS, {"results": [{"execution_id": execution.pk, "status": "success"}]}),
                 401, path=CALLBACKS)
    assert statuses(execution) == ["running"]


def test_a_forged_batch_is_refused_401(signed, executor, start):
    execution = start()
    assert_error(*post(signed, executor, {"execution_id": execution.pk, "status": "success"}, secret="forged"), 401)
    assert statuses(execution) == ["running"]


def test_an_api_key_is_no_substitute_for_the_signature(api, start):
    execution = start()
    assert_error(*api.post(CALLBACKS, {"results": [{"execution_id": execution.pk, "status": "success"}]}), 401)
    assert statuses(execution) == ["running"]


def test_other_methods_answer_405(api):
    assert_error(*api.get(CALLBACKS), 405)


def test_the_trailing_slash_is_optional(signed, executor, start):
    execution = start()
    assert_ok(*signed.post(CALLBACKS + "/", {"results": [{"execution_id": execution.pk, "status": "success"}]},
                           executor=executor), message="执行回调处理成功")
    assert statuses(execution) == ["success"]


def test_when_the_grouped_update_misses_a_row_each_result_goes_through_finish(executor, start, monkeypatch):
    # Cannot happen under the row locks; should it ever, the group is undone and finish() decides row by row.
    failed, succeeded = start(max_retry=1), start()
    update_rows = services._update_rows
    monkeypatch.setattr(services, "_update_rows", lambda status, changes: update_rows(status, changes) - 1)
    reports = [services.ResultReport(failed.pk, "failed"), services.ResultReport(succeeded.pk, "success")]

    verdicts_ = services.apply_callbacks(executor_id=executor.pk, reports=reports, now=timezone.now())

    assert [(v.outcome, v.status) for v in verdicts_] == [("applied", "failed"), ("applied", "success")]
    assert statuses(failed, succeeded) == ["failed", "success"]
    assert TaskExecution.objects.filter(retry_of=failed).count() == 1


def test_row_by_row_a_result_for_a_run_that_ended_meanwhile_changes_nothing(start):
    execution = start()
    TaskExecution.objects.filter(pk=execution.pk).update(status="cancelled")  # the instance still says running

    assert not services._finish_one(execution, services.ResultReport(execution.pk, "success"), now=timezone.now())

    assert (execution.status, statuses(execution)) == ("cancelled", ["cancelled"])


def test_rows_read_in_different_statuses_are_each_applied(executor, start):
    pending, running = start(status="pending", start_time=None), start()
    reports = [services.ResultReport(pending.pk, "success", {"a": 1}), services.ResultReport(running.pk, "timeout")]
    verdicts_ = services.apply_callbacks(executor_id=executor.pk, reports=reports, now=timezone.now())
    assert [v.outcome for v in verdicts_] == ["applied", "applied"]
    pending.refresh_from_db()
    assert (pending.status, pending.result, pending.duration_ms) == ("success", {"a": 1}, None)
    assert statuses(running) == ["timeout"]


@pytest.mark.skipif(connection.vendor == "sqlite", reason="row locks: MariaDB/MySQL and PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_batches_racing_each_other_and_a_stop_apply_each_result_once(make_executor, make_task, make_execution):
    executor = make_executor()
    task = make_task(max_retry=1)
    executions = [make_execution(task=task, executor=executor, status="running", start_time=timezone.now())
                  for _ in range(30)]
    ids = [execution.pk for execution in executions]
    barrier = threading.Barrier(3)
    outcomes: list[list[str]] = []
    stopped: list[bool] = []

    def send(order: list[str], status: str) -> None:
        barrier.wait()
        try:
            reports = [services.ResultReport(execution_id, status) for execution_id in order]
            verdicts_ = services.apply_callbacks(executor_id=executor.pk, reports=reports, now=timezone.now())
            outcomes.append([v.outcome for v in verdicts_])
        finally:
            connections.close_all()

    def stop() -> None:
        barrier.wait()
        try:
            services.stop_execution(execution_id=ids[15], now=timezone.now())
            stopped.append(True)
        except DomainError:
            stopped.append(False)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=(ids, "failed")),
               threading.Thread(target=send, args=(list(reversed(ids)), "success")), threading.Thread(target=stop)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    applied = sum(outcome == "applied" for batch in outcomes for outcome in batch)
    assert len(outcomes) == 2
    assert applied + stopped.count(True) == 30  # each run ended exactly once
    rows = TaskExecution.objects.filter(pk__in=ids)
    assert not rows.filter(status="running").exists()
    failed = rows.filter(status="failed").count()
    assert TaskExecution.objects.filter(retry_of__in=ids).count() == failed  # one retry per failed run, no more
