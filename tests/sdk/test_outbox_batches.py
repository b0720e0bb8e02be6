"""CallbackOutbox sends the reports due together in one batch and settles each by its own verdict; without a
batch endpoint it sends one callback per report. Driven with a recording client, so batches are deterministic."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from typing import Any

import pytest

from scheduler_sdk.client import MAX_CALLBACK_BATCH
from scheduler_sdk.errors import SchedulerAPIError, SchedulerUnavailable
from scheduler_sdk.outbox import MAX_BATCH_BYTES, CallbackOutbox, Delivery, Report, RetryPolicy
from tests.sdk.helpers import wait_until


class RecordingClient:
    """Answers batches with queued answers (an exception is raised) or with ``verdicts`` ("applied" by default)."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.singles: list[str] = []
        self.batch_answers: deque[Any] = deque()
        self.single_answers: dict[str, Exception] = {}
        self.verdicts: dict[str, deque[str]] = {}

    def callback_batch(self, items):
        items = list(items)
        self.batches.append([item["execution_id"] for item in items])
        assert all(set(item) == {"execution_id", "status", "result", "logs", "end_time"} for item in items)
        if self.batch_answers:
            answer = self.batch_answers.popleft()
            if isinstance(answer, Exception):
                raise answer
            return answer
        return {"results": [{"execution_id": item["execution_id"], "outcome": self._verdict(item["execution_id"]),
                             "status": None} for item in items]}

    def _verdict(self, execution_id: str) -> str:
        queued = self.verdicts.get(execution_id)
        return queued.popleft() if queued else "applied"

    def callback(self, execution_id, status, result, logs, end_time):
        self.singles.append(execution_id)
        if execution_id in self.single_answers:
            raise self.single_answers.pop(execution_id)


class Calls:
    def __init__(self) -> None:
        self.unreachable = self.unauthorized = 0

    def on_unreachable(self) -> None:
        self.unreachable += 1

    def on_unauthorized(self) -> None:
        self.unauthorized += 1


@pytest.fixture
def client() -> RecordingClient:
    return RecordingClient()


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def outbox(client, calls):
    """``outbox(*ids, **options)``: the reports queued, then the sender started (so they are due together)."""
    made: list[CallbackOutbox] = []

    def make(*ids: str, **options: Any) -> CallbackOutbox:
        box = CallbackOutbox(client, retry=RetryPolicy(0.01, 0.05), on_unreachable=calls.on_unreachable,
                             on_unauthorized=calls.on_unauthorized, **options)
        for execution_id in ids:
            box.put(report(execution_id))
        box.start()
        made.append(box)
        return box

    yield make
    for box in made:
        box.close(timeout=1)


def report(execution_id: str) -> Report:
    return Report(execution_id, "success", {"id": execution_id}, "", datetime(2026, 1, 1, tzinfo=UTC))


def settled(box: CallbackOutbox) -> dict[str, int]:
    assert box.flush(5)
    return {outcome.value: n for outcome, n in box.counts.items() if n}


def error(status: int, error_text: str = "ERR") -> SchedulerAPIError:
    return SchedulerAPIError(status, status, "error", error=error_text)


def test_reports_due_together_go_in_one_batch_in_order(outbox, client):
    box = outbox("e-1", "e-2", "e-3")
    assert settled(box) == {"delivered": 3}
    assert client.batches == [["e-1", "e-2", "e-3"]] and client.singles == []


def test_more_reports_than_a_batch_holds_go_in_several(outbox, client):
    box = outbox(*[f"e-{n}" for n in range(5)], max_batch=2)
    assert settled(box) == {"delivered": 5}
    assert client.batches == [["e-0", "e-1"], ["e-2", "e-3"], ["e-4"]]


def test_a_batch_stays_well_under_the_schedulers_body_limit(client):
    box = CallbackOutbox(client)
    for n in range(5):
        box.put(Report(f"e-{n}", "success", None, "x" * (MAX_BATCH_BYTES // 5), datetime(2026, 1, 1, tzinfo=UTC)))
    box.start()
    try:
        assert settled(box) == {"delivered": 5}
    finally:
        box.close(timeout=1)
    assert client.batches == [["e-0", "e-1"], ["e-2", "e-3"], ["e-4"]]  # logs count twice (JSON escapes)


@pytest.mark.parametrize("size", [0, MAX_CALLBACK_BATCH + 1])
def test_a_batch_size_outside_the_schedulers_cap_is_refused(client, size):
    with pytest.raises(ValueError, match="max_batch"):
        CallbackOutbox(client, max_batch=size)


def test_each_report_is_settled_by_its_own_verdict(outbox, client, calls):
    client.verdicts = {"e-2": deque(["already_final"]), "e-3": deque(["not_found"]), "e-4": deque(["not_yours"])}
    box = outbox("e-1", "e-2", "e-3", "e-4")
    assert settled(box) == {"delivered": 1, "already_final": 1, "dropped": 2}
    # Refusals are final: not_yours (the run went to another executor) is dropped, never re-sent, and
    # nobody registers again over it (that was a flood: issue #15).
    assert client.batches == [["e-1", "e-2", "e-3", "e-4"]]
    assert calls.unauthorized == 0


def test_a_report_the_answer_leaves_out_is_sent_again(outbox, client):
    client.batch_answers.append({"results": [{"execution_id": "e-1", "outcome": "applied", "status": "success"}]})
    box = outbox("e-1", "e-2")
    assert settled(box) == {"delivered": 2, "retry": 1}
    assert client.batches == [["e-1", "e-2"], ["e-2"]]


def test_an_unreachable_scheduler_gets_the_whole_batch_again(outbox, client, calls):
    client.batch_answers.append(SchedulerUnavailable("connection refused"))
    box = outbox("e-1", "e-2")
    assert settled(box) == {"delivered": 2, "retry": 2}
    assert client.batches == [["e-1", "e-2"], ["e-1", "e-2"]]
    assert calls.unreachable == 1


@pytest.mark.parametrize("refusal", [error(503), error(429), error(401, "signature not valid: stale request")])
def test_a_batch_refused_for_now_is_sent_again_whole(outbox, client, calls, refusal):
    client.batch_answers.append(refusal)
    box = outbox("e-1", "e-2")
    assert settled(box) == {"delivered": 2, "retry": 2}
    assert client.batches == [["e-1", "e-2"], ["e-1", "e-2"]] and client.singles == []
    assert calls.unauthorized == (1 if refusal.http_status == 401 else 0)
    assert box.batching


def test_a_batch_refused_whole_is_sent_one_report_at_a_time(outbox, client):
    client.batch_answers.append(error(400, "results.1.result: must be a JSON object"))
    client.single_answers["e-2"] = error(400)
    box = outbox("e-1", "e-2")
    assert settled(box) == {"delivered": 1, "dropped": 1}
    assert client.singles == ["e-1", "e-2"]
    assert box.batching  # the next reports go in a batch again


@pytest.mark.parametrize("answer", [error(404), error(405),
                                    error(401, "Authentication credentials were not provided.")],
                         ids=["404", "405", "older-401"])
def test_without_a_batch_endpoint_every_report_goes_alone_from_then_on(outbox, client, answer):
    client.batch_answers.append(answer)
    box = outbox("e-1", "e-2")
    assert settled(box) == {"delivered": 2}
    assert not box.batching
    box.put(report("e-3"))
    wait_until(lambda: box.counts[Delivery.DELIVERED] == 3)
    assert client.batches == [["e-1", "e-2"]]
    assert client.singles == ["e-1", "e-2", "e-3"]


def test_an_unexpected_error_sends_the_reports_one_by_one(outbox, client):
    client.batch_answers.append(TypeError("not JSON serializable"))
    box = outbox("e-1")
    assert settled(box) == {"delivered": 1}
    assert client.singles == ["e-1"] and box.batching
