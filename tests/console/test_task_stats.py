"""A task's statistics page: the stats API's 24 h and 90-day figures and a 90-day daily success-rate chart."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from tests.console.conftest import url


def test_stats_page_shows_the_figures_and_a_ninety_day_chart(admin_client, make_task, run):
    task = make_task(name="billing")
    now = timezone.now()
    for minutes, status in [(10, "success"), (20, "success"), (30, "failed"), (40, "timeout")]:
        run(task, status=status, minutes_ago=minutes, duration_ms=2000)
    run(task, status="success", scheduled_time=now - timedelta(days=20), duration_ms=2000)
    # Just after midnight (UTC, the chart's days) the recent runs straddle two days.
    days_with_runs = {(now - timedelta(minutes=m)).date() for m in (10, 40)} | {(now - timedelta(days=20)).date()}
    response = admin_client.get(url("tasks_task_stats", task.pk))
    assert response.status_code == 200
    stats = response.context["stats"]
    assert (stats["total_24h"], stats["success_24h"], stats["success_rate_24h"]) == (4, 2, 50.0)
    assert stats["health_90d"]["total_count"] == 5
    page = response.content.decode()
    assert "Success rate, 24 h" in page and "50%" in page
    assert "Health score, 90 days" in page and "2 s" in page
    chart = str(response.context["chart"])
    assert chart.count("<rect") == 90  # one bar (or stub) per day
    assert chart.count("no runs</title>") == 90 - len(days_with_runs)


def test_stats_page_of_a_task_without_runs(admin_client, make_task):
    response = admin_client.get(url("tasks_task_stats", make_task().pk))
    assert response.status_code == 200
    assert "No run in the last 7 days." in response.content.decode()


def test_stats_page_needs_a_login(client, make_task):
    assert client.get(url("tasks_task_stats", make_task().pk)).status_code == 302
