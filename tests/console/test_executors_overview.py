"""Executors at a glance: per executor its status and health, runs held now and their leases' freshness, the
last health check, failures of the last 24 h (lost apart) and a sparkline; a fixed number of queries however
many executors and runs; for whoever may view executors."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from console.executor_overview import PAGE_SIZE
from executions.models import TaskExecution
from tests.console.conftest import url

OVERVIEW = reverse("admin:executors_overview")


def row_of(page: str, instance_id: str) -> str:
    """The table row of one executor."""
    match = re.search(rf'<tr id="executor-{instance_id}".*?</tr>', page, re.S)
    assert match, f"no row for {instance_id}"
    return match.group(0)


def runs(task, executor, *statuses: str, ago=timedelta(minutes=30), **fields) -> list[TaskExecution]:
    now = timezone.now()
    return TaskExecution.objects.bulk_create([
        TaskExecution(task=task, executor=executor, status=status, scheduled_time=now - ago - timedelta(seconds=index),
                      **fields)
        for index, status in enumerate(statuses)
    ])


@pytest.fixture
def page_of(admin_client):
    def get(path: str = OVERVIEW) -> str:
        response = admin_client.get(path)
        assert response.status_code == 200
        return response.content.decode()

    return get


def test_running_runs_with_fresh_leases_are_counted_and_not_flagged(page_of, make_task, make_executor):
    worker = make_executor(instance_id="worker-1", last_health_check=timezone.now())
    runs(make_task(), worker, "running", "running", lease_until=timezone.now() + timedelta(seconds=12))
    row = row_of(page_of(), "worker-1")
    assert url("executions_taskexecution_changelist") + f"?executor={worker.pk}&amp;status__exact=running" in row
    assert re.search(r"renewed, runs out in 1[01] s", row)
    assert "lease-expired" not in row and "check-stale" not in row
    assert "badge-online" in row and "badge-healthy" in row


def test_an_expired_lease_is_flagged_with_how_long_ago(page_of, make_task, make_executor):
    stuck = make_executor(instance_id="stuck-1", last_health_check=timezone.now())
    task = make_task()
    runs(task, stuck, "running", lease_until=timezone.now() - timedelta(seconds=40))
    runs(task, stuck, "running", lease_until=timezone.now() + timedelta(seconds=10), ago=timedelta(minutes=5))
    page = page_of()
    row = row_of(page, "stuck-1")
    assert "lease-expired" in row and re.search(r"expired 4\d s ago", row) and "1 of 2 run out" in row
    assert re.search(r'id="card-leases">\s*<h3>Expired leases</h3>\s*<p class="console-big">1</p>', page)


def test_failures_of_the_last_day_count_lost_runs_apart(page_of, make_task, make_executor):
    flaky = make_executor(instance_id="flaky-1")
    steady = make_executor(instance_id="steady-1")
    task = make_task()
    runs(task, flaky, "failed", "failed", "timeout", "success")
    runs(task, flaky, "failed", ended_by_scheduler=True, ago=timedelta(hours=2))  # lost
    runs(task, flaky, "failed", "timeout", ago=timedelta(hours=30))  # before the window
    runs(task, steady, "success", "success")
    page = page_of()
    flaky_row = row_of(page, "flaky-1")
    assert "2 failed" in flaky_row and "1 timed out" in flaky_row and "1 lost" in flaky_row
    assert "lost-count" in flaky_row
    assert url("executions_taskexecution_changelist") + f"?executor={flaky.pk}&amp;status__in=failed,timeout" \
        in flaky_row
    assert ">none<" in row_of(page, "steady-1")


def test_an_online_executor_not_checked_lately_is_flagged_an_offline_one_is_not(page_of, make_executor, settings):
    settings.SCHEDULER = {**settings.SCHEDULER, "HEALTH_CHECK_INTERVAL_SECONDS": 30.0,
                          "HEALTH_CHECK_TIMEOUT_SECONDS": 5.0}
    now = timezone.now()
    make_executor(instance_id="fresh-1", last_health_check=now - timedelta(seconds=40))
    make_executor(instance_id="late-1", last_health_check=now - timedelta(minutes=10))
    make_executor(instance_id="new-1")
    make_executor(instance_id="parked-1", status="maintenance", last_health_check=now - timedelta(days=2))
    page = page_of()
    assert "check-stale" not in row_of(page, "fresh-1") and "40 s ago" in row_of(page, "fresh-1")
    assert "check-stale" in row_of(page, "late-1") and "10 min ago" in row_of(page, "late-1")
    assert "check-stale" in row_of(page, "new-1") and "never checked" in row_of(page, "new-1")
    assert "check-stale" not in row_of(page, "parked-1") and "badge-maintenance" in row_of(page, "parked-1")


def test_the_sparkline_has_a_bar_per_hour_with_its_runs(page_of, make_task, make_executor):
    busy = make_executor(instance_id="busy-1")
    task = make_task()
    runs(task, busy, "success", "success", "failed", ago=timedelta(minutes=1))
    runs(task, busy, "success", ago=timedelta(hours=5))
    runs(task, busy, "success", ago=timedelta(hours=25))  # before the sparkline's first hour
    row = row_of(page_of(), "busy-1")
    totals = [int(total) for total in re.findall(r'class="sparkline-bar" data-total="(\d+)"', row)]
    assert len(totals) == 24 and sum(totals) == 4
    assert "2 success, 1 failed" in row  # the tooltip of the busiest hour
    assert 'class="console-sparkline"' in row and "<script" not in row


def test_pages_of_executors(page_of, make_executor):
    for index in range(PAGE_SIZE + 1):
        make_executor(name=f"node-{index:03d}", instance_id=f"node-{index:03d}")
    first = page_of()
    assert first.count('<tr id="executor-') == PAGE_SIZE and 'id="page-next"' in first
    second = page_of(OVERVIEW + "?page=2")
    assert second.count('<tr id="executor-') == 1 and "node-050" in second and 'id="page-previous"' in second
    assert page_of(OVERVIEW + "?page=x").count('<tr id="executor-') == PAGE_SIZE


def _fleet(make_task, make_executor, count: int) -> None:
    task = make_task()
    now = timezone.now()
    for _ in range(count):
        executor = make_executor(last_health_check=now)
        runs(task, executor, "running", lease_until=now + timedelta(seconds=5), ago=timedelta(seconds=1))
        runs(task, executor, "success", "failed", "timeout", "success", ago=timedelta(hours=3))
        runs(task, executor, "failed", ended_by_scheduler=True, ago=timedelta(hours=7))


def test_queries_do_not_grow_with_executors_or_runs(queries_for, make_task, make_executor,
                                                    django_assert_max_num_queries, admin_client):
    _fleet(make_task, make_executor, 2)
    few = queries_for(OVERVIEW)
    _fleet(make_task, make_executor, 12)
    assert queries_for(OVERVIEW) == few
    # The session and user, the page of executors, running and leases, failures, runs per hour, two totals.
    with django_assert_max_num_queries(8):
        assert admin_client.get(OVERVIEW).status_code == 200


def _staff(username: str, *permissions: str):
    user = get_user_model().objects.create_user(username, password="x", is_staff=True)
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def test_a_viewer_of_executors_sees_the_page_and_its_link_others_do_not(client, db):
    client.force_login(_staff("viewer", "view_executor"))
    response = client.get(OVERVIEW)
    assert response.status_code == 200 and 'id="nav-executors"' in response.content.decode()
    client.force_login(_staff("stranger"))
    assert client.get(OVERVIEW).status_code == 403
    assert 'id="nav-executors"' not in client.get(reverse("admin:index")).content.decode()


def test_the_page_needs_a_console_login(client, db):
    response = client.get(OVERVIEW)
    assert response.status_code == 302 and "/login/" in response["Location"]
