"""The timeline's pure parts: windows per zoom, folding grouped counts into cells, a cell's status, and the
budget on upcoming fires."""

from datetime import UTC, datetime, timedelta

import pytest

from core.schedules import build_schedule
from core.timeline import Window, Zoom, fold, upcoming, worst_status

NOW = datetime(2030, 3, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("zoom", "past", "ahead"), [
    (Zoom.HOUR, timedelta(hours=1), timedelta(minutes=15)),
    (Zoom.SIX_HOURS, timedelta(hours=6), timedelta(hours=1, minutes=30)),
    (Zoom.DAY, timedelta(hours=24), timedelta(hours=6)),
    (Zoom.WEEK, timedelta(days=7), timedelta(hours=42)),
])
def test_each_zoom_shows_its_span_to_now_and_a_quarter_ahead(zoom, past, ahead):
    window = Window.around(NOW, zoom)
    assert (window.start, window.end) == (NOW - past, NOW + ahead)
    assert window.fraction(window.start) == 0 and window.fraction(window.end) == 1
    assert window.fraction(NOW) == pytest.approx(0.8)
    assert window.fraction(NOW - 2 * past) == 0  # clamped


def test_grouped_minutes_fold_into_the_windows_cells_and_outside_buckets_are_dropped():
    window = Window.around(NOW, Zoom.SIX_HOURS)  # 5-minute cells from 06:00
    start = window.start
    groups = [(start, "success", 3), (start + timedelta(minutes=4), "failed", 1),
              (start + timedelta(minutes=5), "success", 2), (start - timedelta(minutes=1), "success", 9)]
    assert fold(window, groups) == {start: {"success": 3, "failed": 1}, start + timedelta(minutes=5): {"success": 2}}


@pytest.mark.parametrize(("counts", "shown"), [
    ({"success": 40, "failed": 1}, "failed"),
    ({"success": 5, "timeout": 2, "running": 1}, "timeout"),
    ({"success": 5, "running": 1}, "running"),
    ({"success": 7}, "success"),
])
def test_a_folded_cell_shows_its_worst_status(counts, shown):
    assert worst_status(counts) == shown


def test_upcoming_fires_stop_at_the_window_and_at_the_budget():
    every_second = build_schedule(schedule_type="cron", cron_expression="* * * * * *")
    fires, more = upcoming(every_second.next_after, NOW, NOW + timedelta(hours=1), budget=10)
    assert fires == [NOW + timedelta(seconds=n) for n in range(1, 11)] and more is True
    hourly = build_schedule(schedule_type="cron", cron_expression="0 0 * * * *")
    fires, more = upcoming(hourly.next_after, NOW, NOW + timedelta(hours=3, minutes=30))
    assert fires == [NOW + timedelta(hours=n) for n in (1, 2, 3)] and more is False


def test_upcoming_fires_follow_the_task_time_zone_across_dst():
    # Berlin springs forward on 2030-03-31: 02:30 local does not exist, so that day's fire is at 03:00 local.
    nightly = build_schedule(schedule_type="cron", cron_expression="0 30 2 * * *", timezone="Europe/Berlin")
    start = datetime(2030, 3, 30, 12, 0, tzinfo=UTC)
    fires, _ = upcoming(nightly.next_after, start, start + timedelta(days=2))
    assert fires == [datetime(2030, 3, 31, 1, 0, tzinfo=UTC), datetime(2030, 4, 1, 0, 30, tzinfo=UTC)]
