"""Delivery you can trust across nodes: a notification is claimed by compare-and-set before it is sent, a
claim left by a node that died is taken back after the lease, failures retry with backoff and show their
last error (without the channel's URL), and give up after the last attempt."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerts.channels import DeliveryError
from alerts.choices import NotificationStatus
from alerts.delivery import AlertDelivery
from alerts.models import Notification
from alerts.services import channel_test

pytestmark = pytest.mark.django_db

SECRET_URL = "json://hookuser:hook-pass-s3cret@127.0.0.1:9/private-path-s3cret"


def test_two_nodes_send_a_notification_once(make_channel, clock):
    channel = make_channel("log://")
    channel_test(channel_id=channel.pk, now=clock.now)
    sent = []
    first, second = (AlertDelivery(clock=clock, heartbeats=list) for _ in range(2))

    def racing_transport(url, message, *, signing_secret):
        sent.append(message.notification_id)
        second.send_due(clock.now)  # the other node runs its pass while this one is mid-send

    first.transport = racing_transport
    second.transport = racing_transport
    first.send_due(clock.advance(1))
    assert len(sent) == 1
    assert Notification.objects.get().status == NotificationStatus.SENT


def test_a_claim_left_by_a_dead_node_is_taken_back_after_the_lease(make_channel, delivery, clock, settings):
    settings.SCHEDULER = {**settings.SCHEDULER, "ALERT_SENDING_LEASE_SECONDS": 30}
    channel = make_channel("log://")
    notification = channel_test(channel_id=channel.pk, now=clock.now)
    Notification.objects.filter(pk=notification.pk).update(status=NotificationStatus.SENDING, claimed_at=clock.now,
                                                           attempts=1)
    sent = []
    delivery.transport = lambda url, message, *, signing_secret: sent.append(message.notification_id)
    delivery.send_due(clock.advance(10))
    assert sent == []  # another node may still be sending it
    delivery.send_due(clock.advance(31))
    assert sent == [notification.pk]
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.SENT and notification.attempts == 2


def test_failures_retry_with_backoff_show_the_error_and_give_up(make_channel, delivery, clock, caplog):
    channel = make_channel(SECRET_URL)
    notification = channel_test(channel_id=channel.pk, now=clock.now)
    attempts = []

    def refusing(url, message, *, signing_secret):
        attempts.append(clock.now)
        raise DeliveryError("answered HTTP 503")

    delivery.transport = refusing
    delivery.send_due(clock.advance(1))
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.PENDING and notification.attempts == 1
    assert notification.last_error == "answered HTTP 503"
    assert notification.next_attempt_at == clock.now + timedelta(seconds=5)
    delivery.send_due(clock.advance(2))
    assert len(attempts) == 1  # waits for its backoff
    for _ in range(10):
        delivery.send_due(clock.advance(700))
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.FAILED and notification.attempts == 8 and len(attempts) == 8


def test_a_real_failure_keeps_the_url_out_of_the_error_and_the_log(make_channel, delivery, clock, caplog):
    channel = make_channel(SECRET_URL)
    channel_test(channel_id=channel.pk, now=clock.now)
    delivery.send_due(clock.advance(1))
    notification = Notification.objects.get()
    assert notification.status == NotificationStatus.PENDING and notification.last_error
    for text in (notification.last_error, caplog.text):
        assert "s3cret" not in text and "hookuser" not in text


def test_sent_and_failed_are_counted_for_prometheus(make_channel, delivery, clock, client):
    from prometheus_client import REGISTRY

    def sample(name: str, kind: str) -> float:
        return REGISTRY.get_sample_value(name, {"kind": kind}) or 0.0

    sent_before, failed_before = sample("scheduler_alerts_sent_total", "log"), sample("scheduler_alerts_failed_total",
                                                                                      "json")
    channel_test(channel_id=make_channel("log://").pk, now=clock.now)
    channel_test(channel_id=make_channel(SECRET_URL).pk, now=clock.now)
    delivery.send_due(clock.advance(1))
    assert sample("scheduler_alerts_sent_total", "log") == sent_before + 1
    assert sample("scheduler_alerts_failed_total", "json") == failed_before + 1
    exposition = client.get("/metrics").content.decode()
    assert "scheduler_alerts_sent_total" in exposition and "scheduler_alert_latency_seconds" in exposition


def test_a_url_saved_under_another_secret_key_fails_visibly(make_channel, delivery, clock, settings):
    channel = make_channel("log://")
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    channel_test(channel_id=channel.pk, now=clock.now)
    delivery.send_due(clock.advance(1))
    notification = Notification.objects.get()
    assert notification.status == NotificationStatus.PENDING and "SECRET_KEY" in notification.last_error
