"""The console's alert pages: a channel's URL is typed but never shown again (list, change page, form
errors), the test action queues a notification, incidents filter by open/resolved, the dashboard shows
the alerts card."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from alerts.models import Channel, Incident, Notification

pytestmark = pytest.mark.django_db

SECRET_URL = "mailto://ops:smtp-pass-s3cret@mail.example.com?to=ops@example.com"


def test_the_url_is_stored_from_the_form_and_never_shown(admin_client):
    response = admin_client.post(reverse("admin:alerts_channel_add"), {
        "name": "ops mail", "url": SECRET_URL, "enabled": "on", "rate_window_seconds": "3600"})
    assert response.status_code == 302, response.content[:2000]
    channel = Channel.objects.get()
    assert channel.url == SECRET_URL
    for url in (reverse("admin:alerts_channel_changelist"), reverse("admin:alerts_channel_change", args=[channel.pk])):
        page = admin_client.get(url).content.decode()
        assert "s3cret" not in page and "mail.example.com" not in page and "mailto://••••••" in page


def test_saving_without_a_url_keeps_the_stored_one(admin_client, make_channel):
    channel = make_channel(SECRET_URL, name="ops mail")
    response = admin_client.post(reverse("admin:alerts_channel_change", args=[channel.pk]), {
        "name": "ops mail 2", "url": "", "rate_window_seconds": "60"})
    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.name == "ops mail 2" and channel.url == SECRET_URL and not channel.enabled


def test_a_bad_url_is_refused_without_echoing_it(admin_client):
    response = admin_client.post(reverse("admin:alerts_channel_add"), {
        "name": "x", "url": "nosuchservice://user:pw-s3cret@host", "rate_window_seconds": "60"})
    assert response.status_code == 200 and not Channel.objects.exists()
    assert "s3cret" not in response.content.decode()


def test_the_test_action_queues_a_test_notification(admin_client, make_channel):
    channel = make_channel("log://")
    admin_client.post(reverse("admin:alerts_channel_changelist"),
                      {"action": "send_test", "_selected_action": [channel.pk]})
    assert Notification.objects.get().kind == "test"


def test_incidents_and_the_dashboard_card(admin_client, make_task):
    now = timezone.now()
    task = make_task(name="nightly")
    Incident.objects.create(condition="run_failed", subject=f"task:{task.pk}", open_key="k", task=task,
                            summary="nightly: run failed", opened_at=now, last_seen_at=now)
    page = admin_client.get(reverse("admin:alerts_incident_changelist") + "?state=open").content.decode()
    assert "nightly: run failed" in page
    page = admin_client.get(reverse("admin:alerts_incident_changelist") + "?state=resolved").content.decode()
    assert "nightly: run failed" not in page
    dashboard = admin_client.get(reverse("admin:index")).content.decode()
    assert 'id="card-alerts"' in dashboard and "1 open incident" in dashboard
