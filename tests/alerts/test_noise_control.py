"""Noise control through a real webhook receiver: silence windows, mutes on rules and channels, and a
per-channel rate limit whose held-back notifications go out as one digest."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from alerts.choices import NotificationStatus
from alerts.models import AlertRule, Notification
from core.states import ExecutionStatus
from executions.services import finish

pytestmark = pytest.mark.django_db(transaction=True)


def fail_once(make_execution, task, clock):
    execution = make_execution(task=task, status=ExecutionStatus.RUNNING, start_time=clock.advance(30))
    finish(execution, ExecutionStatus.FAILED, now=clock.advance(1))
    return execution


def test_a_silence_window_in_the_tasks_time_zone_suppresses_and_records(make_task, make_execution, make_channel,
                                                                      global_rule, webhook, delivery, clock):
    make_channel(webhook.url())
    task = make_task(max_retry=0, timezone="Asia/Shanghai")
    local_hour = clock.now.astimezone(ZoneInfo("Asia/Shanghai")).hour
    AlertRule.objects.create(task=task, silence_windows=f"{local_hour:02d}:00-{(local_hour + 2) % 24:02d}:00")
    fail_once(make_execution, task, clock)
    delivery.run_once(clock.advance(1))

    assert webhook.received == []
    [notification] = Notification.objects.all()
    assert notification.status == NotificationStatus.SUPPRESSED and notification.last_error == "silence window"


def test_outside_the_window_it_is_sent(make_task, make_execution, make_channel, global_rule, webhook, delivery, clock):
    make_channel(webhook.url())
    task = make_task(max_retry=0)
    hour = (clock.now.hour + 3) % 24
    AlertRule.objects.create(task=task, silence_windows=f"{hour:02d}:00-{(hour + 1) % 24:02d}:00")
    fail_once(make_execution, task, clock)
    delivery.run_once(clock.advance(1))
    assert len(webhook.received) == 1


@pytest.mark.parametrize("muted", ["rule", "channel"])
def test_mute_until_holds_until_it_passes(make_task, make_execution, make_channel, global_rule, webhook, delivery,
                                          clock, muted):
    channel = make_channel(webhook.url())
    until = clock.now + timedelta(hours=1)
    if muted == "rule":
        global_rule.mute_until = until
        global_rule.save()
    else:
        channel.mute_until = until
        channel.save()
    fail_once(make_execution, make_task(max_retry=0), clock)
    delivery.run_once(clock.advance(1))
    assert webhook.received == []

    clock.advance(3600)
    fail_once(make_execution, make_task(max_retry=0), clock)
    delivery.run_once(clock.advance(1))
    assert len(webhook.received) == 1


def test_rate_limit_holds_the_excess_and_sends_one_digest_when_there_is_room(
        make_task, make_execution, make_channel, global_rule, webhook, delivery, clock):
    make_channel(webhook.url(), rate_limit=2, rate_window_seconds=600)
    tasks = [make_task(name=f"etl-{n}", max_retry=0) for n in range(5)]
    for task in tasks:
        fail_once(make_execution, task, clock)
    delivery.run_once(clock.advance(1))
    delivery.run_once(clock.advance(1))

    assert len(webhook.received) == 2
    assert Notification.objects.filter(status=NotificationStatus.HELD).count() == 3

    clock.advance(300)
    delivery.run_once(clock.advance(1))
    assert len(webhook.received) == 2  # still within the window: nothing more

    clock.advance(600)
    delivery.run_once(clock.advance(1))
    assert len(webhook.received) == 3
    digest = webhook.received[2].json
    assert digest["kind"] == "digest" and "3 notification(s) were held back" in digest["body"]
    held_titles = {n.title for n in Notification.objects.filter(status=NotificationStatus.DIGESTED)}
    assert len(held_titles) == 3 and all(title in digest["body"] for title in held_titles)

    delivery.run_once(clock.advance(1))
    assert len(webhook.received) == 3


def test_test_notifications_pass_mutes_and_limits(api, make_channel, webhook, delivery, clock):
    channel = make_channel(webhook.url(), rate_limit=1, mute_until=clock.now + timedelta(days=1))
    for _ in range(2):
        api.post(f"/api/v1/alerts/channels/{channel.pk}/test")
    delivery.run_once(clock.advance(1))
    assert [hook.json["kind"] for hook in webhook.received] == ["test", "test"]
