from datetime import UTC, datetime

import pytest

from core.clock import utc_now
from executors.models import Executor
from tasks.models import Task, TaskExecutor

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    """The injected clock: tests move time by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> datetime:
        from datetime import timedelta

        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def make_task(db):
    counter = iter(range(1, 10_000))

    def make(**fields) -> Task:
        fields.setdefault("name", f"task-{next(counter)}")
        fields.setdefault("cron_expression", "*/1 * * * * *")
        fields.setdefault("next_run_time", T0)
        return Task.objects.create(**fields)

    return make


@pytest.fixture
def make_executor(db):
    counter = iter(range(1, 10_000))

    def make(*, tasks=(), weight=1, priority=0, **fields) -> Executor:
        n = next(counter)
        fields.setdefault("name", f"executor-{n}")
        fields.setdefault("instance_id", f"executor-{n}")
        fields.setdefault("base_url", f"http://127.0.0.1:{9000 + n}")
        executor = Executor.objects.create(**fields)
        for task in tasks:
            TaskExecutor.objects.create(task=task, executor=executor, weight=weight, priority=priority)
        return executor

    return make


__all__ = ["T0", "FakeClock", "utc_now"]


@pytest.fixture
def transport():
    """The executors of a dispatch test (``tests.scheduling.fakes``); a module may ask for ``Executors``."""
    from tests.scheduling.fakes import FakeExecutors

    return FakeExecutors()


@pytest.fixture
def dispatcher(clock, transport):
    from tests.scheduling.fakes import make_dispatcher

    instance = make_dispatcher(clock, transport)
    yield instance
    instance.shutdown()
