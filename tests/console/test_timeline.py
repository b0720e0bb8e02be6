"""The timeline page: lanes of runs with links, folded cells for busy lanes, upcoming fires, filters, zooms,
and a fixed number of queries however many runs the window holds."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from core.timeline import BAR_BUDGET_PER_LANE
from executions.models import TaskExecution
from tests.console.conftest import url

TIMELINE = reverse("admin:timeline")


def runs(task, count: int, *, every: timedelta, status: str = "success", executor=None, ago=timedelta(minutes=1)):
    now = timezone.now()
    rows = []
    for index in range(count):
        scheduled = now - ago - every * index
        rows.append(TaskExecution(task=task, executor=executor, status=status, scheduled_time=scheduled,
                                  start_time=scheduled, end_time=scheduled + timedelta(seconds=20)))
    return TaskExecution.objects.bulk_create(rows)


def lane_names(html: str) -> list[str]:
    return re.findall(r'text-anchor="end" fill="currentColor"><title>[^<]*</title>([^<]*)</text>', html)


def test_each_run_is_a_bar_linking_to_it_in_lanes_busiest_first(admin_client, make_task):
    quiet, busy = make_task(name="quiet-job"), make_task(name="busy-job")
    runs(quiet, 2, every=timedelta(minutes=30))
    failed = runs(busy, 5, every=timedelta(minutes=10), status="failed")
    html = admin_client.get(TIMELINE).content.decode()
    assert lane_names(html)[:2] == ["busy-job", "quiet-job"]
    assert html.count('class="timeline-bar"') == 7
    assert url("executions_taskexecution_change", failed[0].pk) in html
    assert 'class="timeline-now"' in html


def test_a_lane_over_the_bar_budget_is_folded_into_cells(admin_client, make_task):
    every_second = make_task(name="every-second")
    runs(every_second, BAR_BUDGET_PER_LANE + 50, every=timedelta(seconds=10))
    html = admin_client.get(TIMELINE + "?zoom=6h").content.decode()
    assert 'class="timeline-bar"' not in html
    cells = re.findall(r"<title>\d{4}-\d\d-\d\d \d\d:\d\d UTC: (\d+) success</title>", html)
    assert sum(int(count) for count in cells) == BAR_BUDGET_PER_LANE + 50
    assert len(cells) <= 6 * 12 + 1  # 5-minute cells over 6 hours


def test_upcoming_fires_are_marked_for_active_tasks_only(admin_client, make_task):
    make_task(name="hourly", cron_expression="0 0 * * * *", next_run_time=timezone.now() + timedelta(minutes=30))
    paused = make_task(name="paused-hourly", cron_expression="0 0 * * * *", status="paused")
    runs(paused, 1, every=timedelta(minutes=1))
    html = admin_client.get(TIMELINE + "?zoom=24h").content.decode()
    assert "hourly" in lane_names(html) and "paused-hourly" in lane_names(html)
    assert html.count('class="timeline-fire"') == 6  # the next 6 hours, one fire each, and none for the paused


def test_filters_by_task_executor_and_status(admin_client, make_task, make_executor):
    a, b = make_task(name="alpha"), make_task(name="beta")
    worker = make_executor(name="worker-eu")
    runs(a, 4, every=timedelta(minutes=5), executor=worker)
    runs(b, 3, every=timedelta(minutes=5), status="failed")
    assert lane_names(admin_client.get(TIMELINE + "?task=alph").content.decode()) == ["alpha"]
    assert lane_names(admin_client.get(TIMELINE + "?executor=worker-eu").content.decode()) == ["alpha"]
    assert lane_names(admin_client.get(TIMELINE + "?status=failed").content.decode()) == ["beta"]
    assert lane_names(admin_client.get(TIMELINE + "?lanes=1").content.decode()) == ["alpha"]


@pytest.mark.parametrize("zoom", ["1h", "6h", "24h", "7d", "bogus"])
def test_every_zoom_preset_renders_and_a_bad_value_falls_back(admin_client, make_task, zoom):
    runs(make_task(name="job"), 3, every=timedelta(minutes=15))
    response = admin_client.get(TIMELINE + f"?zoom={zoom}&lanes=abc")
    assert response.status_code == 200
    shown = "6h" if zoom == "bogus" else zoom
    assert f'id="zoom-{shown}"' in response.content.decode()
    assert re.search(rf'class="button default" id="zoom-{shown}"', response.content.decode())


def test_queries_do_not_grow_with_runs_or_lanes(queries_for, make_task):
    for index in range(3):
        runs(make_task(name=f"small-{index}"), 2, every=timedelta(minutes=7))
    few = queries_for(TIMELINE)
    for index in range(12):
        runs(make_task(name=f"big-{index}"), 40, every=timedelta(minutes=1))
    runs(make_task(name="huge"), BAR_BUDGET_PER_LANE + 1, every=timedelta(seconds=5))
    assert queries_for(TIMELINE) <= few + 1  # the folded lane's grouped query


def test_the_timeline_needs_a_console_login(client):
    response = client.get(TIMELINE)
    assert response.status_code == 302 and "/login/" in response["Location"]
