"""Windows, jitter, backfill planning and the preview: pure, table-driven, no database and no clock."""

from datetime import UTC, datetime, timedelta

import pytest

from core.calendars import Blackout
from core.controls import BackfillTooLarge, jitter, plan_backfill, preview
from core.cron import parse_cron
from core.schedules import build_schedule


def at(hour: int, minute: int = 0, second: int = 0, day: int = 6) -> datetime:
    return datetime(2026, 12, day, hour, minute, second, tzinfo=UTC)


EVERY_10_MIN = parse_cron("0 */10 * * * *")


def windowed(schedule_type="cron", start=None, end=None, **fields):
    fields.setdefault("cron_expression", "0 */10 * * * *")
    return build_schedule(schedule_type=schedule_type, start_at=start, end_at=end, **fields)


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        (windowed(start=at(10, 5)), at(9), at(10, 10)),  # nothing before start_at
        (windowed(start=at(10, 10)), at(9), at(10, 10)),  # a fire at exactly start_at runs
        (windowed(end=at(10, 20)), at(10, 10), at(10, 20)),  # a fire at exactly end_at runs
        (windowed(end=at(10, 20)), at(10, 20), None),  # nothing after end_at
        (windowed("interval", start=at(10, 0, 7), interval_seconds=60), at(9), at(10, 0, 7)),  # anchored
        (windowed("interval", start=at(10), end=at(10, 1), interval_seconds=60), at(10, 1), None),
        (windowed("date", end=at(10), run_at=at(11)), at(9), None),  # the date is outside the window
        (windowed("date", start=at(12), run_at=at(11)), at(9), None),
        (windowed("date", start=at(10), end=at(12), run_at=at(11)), at(9), at(11)),
    ],
)
def test_window_bounds_next_fire_for_every_schedule_type(schedule, after, expected):
    assert schedule.next_after(after) == expected


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        (at(12), at(10, 30)),  # the last fire inside the window
        (at(10, 30), at(10, 20)),
        (at(10, 10), None),  # nothing before start_at
    ],
)
def test_window_bounds_previous_fire(before, expected):
    assert windowed(start=at(10, 10), end=at(10, 30)).prev_before(before) == expected


def test_jitter_is_deterministic_per_task_and_time_and_bounded():
    delays = {jitter("task-a", at(10, m), 30) for m in range(0, 60, 10)}
    assert jitter("task-a", at(10), 30) == jitter("task-a", at(10), 30)  # any node computes the same
    assert len(delays) > 1, "different fire times spread out"
    assert all(timedelta(0) <= d < timedelta(seconds=30) for d in delays)
    assert jitter("task-a", at(10), 30) != jitter("task-b", at(10), 30)


@pytest.mark.parametrize("max_seconds", [None, 0])
def test_no_jitter_means_no_delay(max_seconds):
    assert jitter("task-a", at(10), max_seconds) == timedelta(0)


def test_jitter_spreads_a_herd_over_the_whole_range():
    delays = [jitter(f"task-{n}", at(10), 60).total_seconds() for n in range(1000)]
    assert min(delays) < 3 and max(delays) > 57
    assert 25 < sum(delays) / len(delays) < 35


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (at(10), at(10, 30), [at(10), at(10, 10), at(10, 20), at(10, 30)]),  # both ends included
        (at(10, 1), at(10, 9), []),
        (at(10, 5), at(10, 15), [at(10, 10)]),
    ],
)
def test_backfill_plans_every_fire_time_in_the_range(start, end, expected):
    assert plan_backfill(EVERY_10_MIN, start, end, cap=100) == expected


def test_backfill_past_the_cap_is_refused_not_truncated():
    assert len(plan_backfill(EVERY_10_MIN, at(10), at(11, 30), cap=10)) == 10
    with pytest.raises(BackfillTooLarge, match="more than 10"):
        plan_backfill(EVERY_10_MIN, at(10), at(11, 40), cap=10)


def test_backfill_respects_the_window():
    assert plan_backfill(windowed(end=at(10, 10)), at(10), at(11), cap=10) == [at(10), at(10, 10)]


def test_backfill_of_a_reversed_range_is_refused():
    with pytest.raises(ValueError, match="ends before"):
        plan_backfill(EVERY_10_MIN, at(11), at(10), cap=10)


SUNDAY_MAINTENANCE = Blackout.of("maintenance", "UTC", ["Sun 02:00-03:00"])


def test_preview_counts_runs_and_shows_blacked_out_fires_with_their_calendar():
    fires = preview(EVERY_10_MIN, after=at(1, 45), count=3, task_id="t", jitter_seconds=None,
                    calendars=[SUNDAY_MAINTENANCE])
    assert [(f.scheduled_time, f.blackout is None) for f in fires] == [
        (at(1, 50), True), *[(at(2, m), False) for m in range(0, 60, 10)], (at(3), True), (at(3, 10), True),
    ]
    assert fires[1].blackout == "calendar 'maintenance' (Sun 02:00-03:00)"


def test_preview_dispatch_instant_carries_the_jitter():
    [fire] = preview(EVERY_10_MIN, after=at(9), count=1, task_id="t", jitter_seconds=60, calendars=[])
    assert fire.dispatch_at == fire.scheduled_time + jitter("t", fire.scheduled_time, 60)


def test_preview_of_an_always_blacked_out_task_ends():
    always = Blackout.of("always", "UTC", ["2026-01-01..2030-01-01"])
    fires = preview(parse_cron("0 * * * * *"), after=at(9), count=5, task_id="t", jitter_seconds=None,
                    calendars=[always])
    assert fires and all(f.blackout for f in fires)
