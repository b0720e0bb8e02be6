"""Alerts end to end through real receivers in the test process: an SMTP server (aiosmtpd, sent to by
Apprise's mailto://) and an HTTP webhook (our signed webhook). Runs end through ``executions.services.finish``
as they do in production; the leader's pass is ``AlertDelivery.run_once``."""

from __future__ import annotations

import pytest

from alerts.models import Incident, Notification
from core.states import ExecutionStatus
from executions.services import finish
from scheduler_sdk.signing import MemoryNonceStore, verify

pytestmark = pytest.mark.django_db(transaction=True)


def run_and_end(make_execution, task, status, clock, *, logs="", duration_s=1.0):
    start = clock.advance(60)
    execution = make_execution(task=task, status=ExecutionStatus.RUNNING, start_time=start, logs=logs)
    finish(execution, status, now=clock.advance(duration_s))
    return execution


def test_three_failures_make_one_alert_then_one_recovery(make_task, make_execution, make_channel, global_rule,
                                                          smtp, webhook, delivery, clock):
    make_channel(smtp.url, name="ops mail")
    make_channel(webhook.url(), name="ops hook")
    task = make_task(name="nightly-report", max_retry=0, timezone="Europe/Berlin")
    failed = [run_and_end(make_execution, task, ExecutionStatus.FAILED, clock,
                          logs=f"step 3 failed\npassword=hunter2 rejected (try {n})") for n in range(3)]
    for _ in range(2):
        delivery.run_once(clock.advance(1))

    assert len(smtp.inbox) == 1 and len(webhook.received) == 1
    mail = smtp.inbox[0]
    assert "nightly-report" in mail.subject and "failed" in mail.subject
    assert "Europe/Berlin" in mail.body and "UTC" in mail.body
    assert f"/admin/executions/taskexecution/{failed[0].pk}/change/" in mail.body
    assert "password=••••••" in mail.body and "hunter2" not in mail.body
    incident = Incident.objects.get(task=task)
    assert incident.count == 3 and incident.is_open

    run_and_end(make_execution, task, ExecutionStatus.SUCCESS, clock)
    run_and_end(make_execution, task, ExecutionStatus.SUCCESS, clock)
    for _ in range(2):
        delivery.run_once(clock.advance(1))

    assert len(smtp.inbox) == 2 and len(webhook.received) == 2
    assert smtp.inbox[1].subject.startswith("[RECOVERED] nightly-report")
    assert webhook.received[1].json["kind"] == "recovery"
    incident.refresh_from_db()
    assert not incident.is_open


def test_the_webhook_is_signed_with_the_channel_secret(make_task, make_execution, make_channel, global_rule,
                                                       webhook, delivery, clock):
    channel = make_channel(webhook.url("/hooks/alerts?team=ops"))
    run_and_end(make_execution, make_task(max_retry=0), ExecutionStatus.TIMEOUT, clock)
    delivery.run_once(clock.advance(1))

    [hook] = webhook.received
    verify(channel.signing_secret, "POST", hook.path, hook.body, hook.headers, remember_nonce=MemoryNonceStore())
    notification = Notification.objects.get()
    assert hook.headers["X-Scheduler-Notification"] == notification.pk == hook.json["id"]
    assert "run timeout" in hook.json["title"]


def test_a_retried_run_alerts_after_its_last_attempt_only(make_task, make_execution, make_channel, global_rule,
                                                          webhook, delivery, clock):
    make_channel(webhook.url())
    task = make_task(max_retry=2)
    first = run_and_end(make_execution, task, ExecutionStatus.FAILED, clock)
    delivery.run_once(clock.advance(1))
    assert webhook.received == []  # a retry is scheduled: not yet worth a word

    previous = first
    for _ in (1, 2):
        retry = previous.retries.get()
        retry.status = ExecutionStatus.RUNNING
        retry.start_time = clock.advance(5)
        retry.save()
        finish(retry, ExecutionStatus.FAILED, now=clock.advance(1))
        previous = retry
    delivery.run_once(clock.advance(1))
    assert len(webhook.received) == 1 and "No retry left." in webhook.received[0].json["body"]


def test_each_attempt_mode_alerts_once_per_incident_all_the_same(make_task, make_execution, make_channel,
                                                               global_rule, webhook, delivery, clock):
    global_rule.on_failure = "each"
    global_rule.save()
    make_channel(webhook.url())
    task = make_task(max_retry=1)
    first = run_and_end(make_execution, task, ExecutionStatus.FAILED, clock)
    delivery.run_once(clock.advance(1))
    assert len(webhook.received) == 1 and "A retry is scheduled." in webhook.received[0].json["body"]
    retry = first.retries.get()
    retry.status, retry.start_time = ExecutionStatus.RUNNING, clock.advance(5)
    retry.save()
    finish(retry, ExecutionStatus.FAILED, now=clock.advance(1))
    delivery.run_once(clock.advance(1))
    assert len(webhook.received) == 1
    assert Incident.objects.get().count == 2
