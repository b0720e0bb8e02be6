from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from alerts.delivery import AlertDelivery
from alerts.models import AlertRule, Channel
from alerts.outbox import forget_cached_rules
from tests.alerts.receivers import SmtpReceiver, WebhookReceiver
from tests.e2e.conftest import cluster, pytest_runtest_makereport  # noqa: F401  (real-process tests)
from tests.processes import Processes, child_database_url, child_log_dir


@pytest.fixture
def procs(request, transactional_db) -> Iterator[Processes]:
    """tests.e2e's children, given the test process's SECRET_KEY instead of a random one: channel URLs are
    encrypted with a key derived from it (alerts.crypto), so the channels a test saves must be readable by
    every node that delivers. ``cluster`` starts its children through this fixture."""
    processes = Processes(child_database_url(), log_dir=child_log_dir(request.node.nodeid),
                          env={"SECRET_KEY": settings.SECRET_KEY})
    request.node.child_processes = processes
    try:
        yield processes
    finally:
        processes.close()


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def make_channel(db) -> Callable[..., Channel]:
    def make(url: str, **fields: Any) -> Channel:
        channel = Channel(name=fields.pop("name", f"channel-{Channel.objects.count() + 1}"), **fields)
        channel.url = url
        channel.save()
        return channel

    return make


@pytest.fixture
def global_rule(db) -> AlertRule:
    rule = AlertRule.objects.create()
    forget_cached_rules()
    return rule


class Clock:
    """A settable clock for the delivery's own reads (claim and sent times)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(timezone.now())


@pytest.fixture
def delivery(clock) -> AlertDelivery:
    return AlertDelivery(clock=clock, heartbeats=list)


@pytest.fixture(autouse=True)
def _fresh_rule_cache():
    forget_cached_rules()
    yield
    forget_cached_rules()
