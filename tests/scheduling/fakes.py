"""The executors of the dispatch tests, replaced by fake transports, and the helpers those tests share.
The ``transport`` and ``dispatcher`` fixtures built on them are in conftest.py."""

from __future__ import annotations

import json
from concurrent.futures import Future

from executions.models import TaskExecution
from executors.client import Answer, Unreachable
from executors.netguard import RefusedURL
from scheduling.dispatch import Dispatcher


class FakeExecutors:
    """Answers POSTs by URL: a status code, or an exception to raise. Records every call.

    ``POST /execute/batch`` is answered the same way as a whole; when that is a 2xx, each run gets the status
    ``item_answers[execution_id]`` (202 by default; None leaves the run out of the answer)."""

    def __init__(self) -> None:
        self.answers: dict[str, object] = {}
        self.item_answers: dict[str, int | None] = {}
        self.calls: list[tuple[str, dict]] = []

    def __call__(self, executor, url: str, payload: dict, *, timeout: float):
        assert url.startswith(executor.base_url)
        self.calls.append((url, payload))
        answer = self.answers.get(executor.base_url if url.endswith("/execute/batch") else url.rsplit("/", 1)[0],
                                  202)
        if isinstance(answer, Exception):
            raise answer
        if url.endswith("/execute/batch") and 200 <= answer < 300:
            return Answer(200, json.dumps({"results": [
                {"execution_id": item["execution_id"], "status": self.item_answers.get(item["execution_id"], 202)}
                for item in payload["executions"]
                if self.item_answers.get(item["execution_id"], 202) is not None]}).encode())
        return Answer(answer, b"")

    def install(self, dispatcher: Dispatcher) -> None:
        """Replace the dispatcher's transport seams with this fake (the sweeps' questions too)."""
        delivery = dispatcher.delivery
        delivery.transport, delivery.transport_prepare, delivery.transport_soon = self, self.prepare, self.soon
        delivery.transport_prepare_batch = self.prepare_batch
        dispatcher.sweeper.transport = self

    def prepare(self, executor, url: str, payload: dict, *, checked=None) -> tuple:
        return executor, url, payload

    def prepare_batch(self, executor, url: str, bodies: list[bytes], *, checked=None) -> tuple:
        return executor, url, {"executions": [json.loads(body) for body in bodies]}

    def soon(self, sends: list, *, timeout: float) -> list[Future]:
        """The dispatcher's send-without-waiting: futures already holding the answers."""
        futures = []
        for executor, url, payload in sends:
            future: Future = Future()
            try:
                future.set_result(self(executor, url, payload, timeout=timeout))
            except (Unreachable, RefusedURL) as exc:
                future.set_exception(exc)
            futures.append(future)
        return futures


class Executors(FakeExecutors):
    """Also answers POST /status with ``states[base_url]`` (execution id -> entry), and records sleeps: the
    executors of the lease tests."""

    def __init__(self) -> None:
        super().__init__()
        self.states: dict[str, dict] = {}
        self.slept: list[float] = []

    def __call__(self, executor, url: str, payload: dict, *, timeout: float):
        if url.endswith("/status"):
            self.calls.append((url, payload))
            entries = self.states.get(executor.base_url)
            if entries is None:
                raise Unreachable("ConnectionRefusedError", maybe_received=False)
            return Answer(200, json.dumps({"executions": list(entries.values())}).encode())
        return super().__call__(executor, url, payload, timeout=timeout)

    def install(self, dispatcher: Dispatcher) -> None:
        super().install(dispatcher)
        dispatcher.delivery.sleep = self.slept.append


def make_dispatcher(clock, transport, *, workers: int = 4, **options) -> Dispatcher:
    """A dispatcher on ``clock`` whose executors are ``transport``; the caller shuts it down."""
    instance = Dispatcher(clock=clock, workers=workers, **options)
    transport.install(instance)
    return instance


def dispatch(dispatcher, now):
    started = dispatcher.dispatch_pending(now)
    assert dispatcher.wait_idle(10)
    return started


def sweep(dispatcher, step, now):
    """Run the sweep ``step`` and wait for the work it handed to the workers."""
    found = getattr(dispatcher, step)(now)
    dispatcher.pool.shutdown(wait=True)
    return found


def posts(transport) -> list[dict]:
    return [payload for url, payload in transport.calls if url.endswith("/execute")]


def only_execution(task):
    return TaskExecution.objects.get(task=task)
