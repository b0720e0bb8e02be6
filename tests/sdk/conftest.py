from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from scheduler_sdk import Executor
from tests.sdk.fake_scheduler import FakeScheduler

_ids = itertools.count(1)


@pytest.fixture
def scheduler() -> Iterator[FakeScheduler]:
    fake = FakeScheduler().start()
    yield fake
    fake.stop()


@pytest.fixture
def make_executor(scheduler: FakeScheduler) -> Iterator[Callable[..., Executor]]:
    """Builds started executors with test-friendly timings; stops them at teardown."""
    started: list[Executor] = []

    def build(handlers: dict[str, Callable[..., Any]] | None = None, *, start: bool = True,
              **options: Any) -> Executor:
        options.setdefault("callback_retry", (0.05, 0.2))
        options.setdefault("heartbeat_interval", 0.1)
        options.setdefault("stop_grace", 1.0)
        executor = Executor("test-executor", f"test-{next(_ids)}", scheduler.url, **options)
        for name, fn in (handlers or {}).items():
            executor.add_handler(name, fn)
        if start:
            executor.start()
            started.append(executor)
        return executor

    yield build
    for executor in started:
        executor.stop(timeout=2)
