"""The console's index: cluster, executors, runs in flight, 24 h success rate, the hourly chart, the tasks
failing most; its panel refreshes itself through its own URL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from console.dashboard import dashboard, hourly_buckets
from monitoring.selectors import failing_tasks
from scheduling.models import SchedulerInstance

INDEX = "/admin/"


@pytest.fixture
def cluster(db):
    now = timezone.now()
    leader = SchedulerInstance.objects.create(instance_id="node-1", host="10.0.0.1", port=8000, is_leader=True,
                                              leader_since=now - timedelta(hours=2))
    follower = SchedulerInstance.objects.create(instance_id="node-2", host="10.0.0.2", port=8000)
    SchedulerInstance.objects.filter(pk=follower.pk).update(updated_at=now - timedelta(minutes=10))
    return leader, follower


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    response = client.get(INDEX)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_dashboard_shows_cluster_executors_runs_and_success_rate(admin_client, cluster, make_executor, run):
    make_executor()
    make_executor(is_healthy=False)
    make_executor(status="maintenance")
    task = run(status="success").task
    run(task, status="failed", minutes_ago=10)
    run(task, status="running", minutes_ago=1)
    run(task, status="pending", minutes_ago=0.5)
    response = admin_client.get(INDEX)
    assert response.status_code == 200
    page = response.content.decode()
    assert "node-1" in page and "10.0.0.1" in page and "(2 h)" in page  # the leader and for how long
    assert "stale" in page  # node-2's heartbeat is 10 minutes old
    assert "1 / 2" in page  # instances with a fresh heartbeat
    assert "2 online · 1 healthy" in page
    assert "1 running" in page and "1 pending" in page
    assert "25%" in page  # 1 success of 4 runs in the last 24 h
    assert "<svg" in page and "Executions per hour" in page
    assert 'id="failing-tasks"' in page and task.name in page
    assert reverse("admin:dashboard_panel") in page  # where the page refreshes itself from


def test_dashboard_without_any_scheduler_says_nothing_fires(admin_client):
    page = admin_client.get(INDEX).content.decode()
    assert "No leader" in page and "nothing fires" in page


def test_panel_url_renders_just_the_panel(admin_client, cluster):
    response = admin_client.get(reverse("admin:dashboard_panel"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "node-1" in body and "<svg" in body and "<html" not in body


def test_panel_needs_a_staff_login(client):
    assert client.get(reverse("admin:dashboard_panel")).status_code == 302


def test_hourly_buckets_count_each_status_in_its_hour(run):
    now = timezone.now()
    # Placed from the current hour's start, so no run crosses into another hour whatever the minute now is.
    hour = now.replace(minute=0, second=0, microsecond=0)
    three_hours_ago = hour - timedelta(hours=3)
    task = run(status="success", scheduled_time=hour + (now - hour) / 2).task
    run(task, status="failed", scheduled_time=three_hours_ago + timedelta(minutes=10))
    run(task, status="failed", scheduled_time=three_hours_ago + timedelta(minutes=20))
    run(task, status="success", scheduled_time=now - timedelta(hours=30))  # outside the window
    buckets = hourly_buckets(now)
    assert len(buckets) == 24
    assert buckets[-1].values == {"success": 1}
    [bucket] = [b for b in buckets if b.title.startswith(f"{three_hours_ago:%Y-%m-%d %H}:00")]
    assert bucket.values == {"failed": 2}
    assert sum(bucket.total for bucket in buckets) == 3


def test_failing_tasks_rank_by_failures_and_ignore_healthy_tasks(run, make_task):
    flaky, broken, fine = make_task(name="flaky"), make_task(name="broken"), make_task(name="fine")
    for _ in range(3):
        run(broken, status="failed")
    run(broken, status="timeout")
    run(flaky, status="failed")
    run(flaky, status="success")
    run(fine, status="success")
    rows = failing_tasks(timezone.now())
    assert [(row["task__name"], row["failures"], row["total"]) for row in rows] == [("broken", 4, 4), ("flaky", 1, 2)]
    assert rows[1]["failure_rate"] == 50.0


def test_dashboard_queries_do_not_grow_with_history(admin_client, cluster, run, make_task, queries_for):
    tasks = [make_task() for _ in range(3)]
    for task in tasks:
        run(task, status="failed")
    few = queries_for(INDEX)
    for task in [make_task() for _ in range(12)]:
        for minutes in range(1, 6):
            run(task, status="failed", minutes_ago=minutes * 30)
    assert queries_for(INDEX) == few


def test_dashboard_reads_in_a_bounded_number_of_queries(db, cluster, django_assert_max_num_queries):
    # 10 for the cluster, counts and charts; 2 for the alerts card (open incidents, undelivered notifications).
    with django_assert_max_num_queries(12):
        dashboard(timezone.now())
