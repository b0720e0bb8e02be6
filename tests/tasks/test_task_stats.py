"""Spec 000 §5.9: a task's 24-hour figures, 90-day health, and daily series, computed on a known history."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.helpers import assert_error, assert_ok, is_int, is_number

TASKS = "/api/v1/tasks"

# (age, status, duration in ms) of one task's executions, relative to now.
HISTORY = [
    (timedelta(hours=1), "success", 2000),
    (timedelta(hours=2), "failed", 4000),
    (timedelta(hours=3), "timeout", 6000),
    (timedelta(hours=4), "running", None),
    (timedelta(hours=5), "success", 1000),
    (timedelta(days=2), "success", 3000),
    (timedelta(days=3), "failed", 5000),
    (timedelta(days=10), "success", 7000),
    (timedelta(days=40), "success", 8000),
    (timedelta(days=91), "success", 9000),  # outside the 90-day window
    (-timedelta(hours=1), "pending", None),  # scheduled in the future: not history yet
]


@pytest.fixture
def history(make_task, make_execution):
    task = make_task()
    now = timezone.now()
    rows = []
    for age, status, duration in HISTORY:
        scheduled = now - age
        end = scheduled + timedelta(milliseconds=duration) if duration is not None else None
        rows.append(make_execution(task=task, scheduled_time=scheduled, start_time=scheduled if duration else None,
                                   end_time=end, duration_ms=duration, status=status))
    # Another task's run in the same hours must not count.
    make_execution(scheduled_time=now - timedelta(hours=1), status="failed", duration_ms=50_000)
    return task, now, rows


def test_task_stats_24h_figures(api, history):
    task, _, _ = history
    data = assert_ok(*api.get(f"{TASKS}/{task.pk}/stats"))
    # Last 24 h: success, failed, timeout, running, success; the rate is over the 4 finished runs.
    assert data["total_24h"] == 5
    assert data["success_24h"] == 2
    assert data["success_rate_24h"] == 50.0


def test_task_stats_90_day_health_summary(api, history):
    task, _, _ = history
    health = assert_ok(*api.get(f"{TASKS}/{task.pk}/stats"))["health_90d"]
    # 9 runs in 90 days (the 91-day-old one and the future one are out): 5 success, 2 failed, 1 timeout, 1 running.
    assert health["total_count"] == 9
    assert health["success_count"] == 5
    assert health["failed_count"] == 2
    assert health["timeout_count"] == 1
    assert health["period_days"] == 90
    # Mean of the 8 recorded durations in the window: 36 000 ms / 8.
    assert health["avg_duration_seconds"] == 4.5
    # Of the 8 finished runs (the running one is not): success rate 62.5 % less twice the timeout rate 12.5 %.
    assert health["health_score"] == 37.5


def test_task_stats_daily_series(api, history):
    task, now, rows = history
    data = assert_ok(*api.get(f"{TASKS}/{task.pk}/stats"))
    window = [row for row in rows if now - timedelta(days=90) <= row.scheduled_time <= now]
    days: dict = defaultdict(lambda: {"total": 0, "success": 0, "failed": 0})
    finished: dict = defaultdict(int)  # the success rate is taken over finished runs only
    for row in window:
        day = days[row.scheduled_time.date().isoformat()]
        day["total"] += 1
        day["success"] += row.status == "success"
        day["failed"] += row.status == "failed"
        finished[row.scheduled_time.date().isoformat()] += row.status in ("success", "failed", "timeout")
    expected_daily = [
        {"date": date, "successRate": round(counts["success"] * 100 / finished[date], 2) if finished[date] else 0.0,
         "total": counts["total"]}
        for date, counts in sorted(days.items())
    ]
    assert data["daily_stats_90d"] == expected_daily
    week_start = (now - timedelta(days=6)).date().isoformat()
    expected_recent = [
        {"date": date, **counts,
         "success_rate": round(counts["success"] * 100 / finished[date], 2) if finished[date] else 0.0}
        for date, counts in sorted(days.items(), reverse=True)
        if date >= week_start
    ]
    assert data["recent_executions"] == expected_recent
    assert len(expected_recent) >= 3  # today's runs (maybe split over two dates), 2 and 3 days ago


def test_task_stats_field_names_and_types_follow_the_spec(api, history):
    task, _, _ = history
    data = assert_ok(*api.get(f"{TASKS}/{task.pk}/stats"))
    assert set(data) == {"success_rate_24h", "total_24h", "success_24h", "health_90d", "recent_executions",
                         "daily_stats_90d", "shards_24h"}  # shards_24h: broadcast tasks' shards (#20)
    assert isinstance(data["success_rate_24h"], float)
    assert is_int(data["total_24h"]) and is_int(data["success_24h"])
    assert set(data["health_90d"]) == {"health_score", "total_count", "success_count", "failed_count",
                                       "timeout_count", "avg_duration_seconds", "period_days"}
    assert is_number(data["health_90d"]["health_score"])
    for day in data["recent_executions"]:
        assert set(day) == {"date", "total", "success", "failed", "success_rate"}
    for day in data["daily_stats_90d"]:
        assert set(day) == {"date", "successRate", "total"}


def test_task_stats_of_a_task_without_history_are_zero(api, make_task):
    data = assert_ok(*api.get(f"{TASKS}/{make_task().pk}/stats"))
    assert (data["success_rate_24h"], data["total_24h"], data["success_24h"]) == (0.0, 0, 0)
    assert data["health_90d"]["total_count"] == 0
    assert data["health_90d"]["health_score"] == 0.0
    assert data["recent_executions"] == [] and data["daily_stats_90d"] == []


def test_task_stats_of_a_deleted_task_stay_readable(api, make_task, make_execution):
    task = make_task(status="deleted")
    make_execution(task=task, status="success", scheduled_time=timezone.now() - timedelta(minutes=5))
    assert assert_ok(*api.get(f"{TASKS}/{task.pk}/stats"))["total_24h"] == 1


def test_task_stats_of_unknown_task_answer_404_10003(api):
    assert_error(*api.get(f"{TASKS}/ghost/stats"), 404, 10003)
