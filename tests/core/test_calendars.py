"""Blackout calendars: entry parsing and membership on local wall time, one row per case."""

from datetime import UTC, datetime

import pytest

from core.calendars import Blackout, CalendarError, DateSpan, WeeklyWindow, blackout_at, parse_entry


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("2026-12-25", DateSpan(datetime(2026, 12, 25).date(), datetime(2026, 12, 25).date())),
        (" 2026-12-24..2026-12-26 ", DateSpan(datetime(2026, 12, 24).date(), datetime(2026, 12, 26).date())),
        ("Sun 02:00-04:00", WeeklyWindow(6, 120, 120)),
        ("mon 9:30-10:00", WeeklyWindow(0, 570, 30)),
        ("Sat 23:00-01:00", WeeklyWindow(5, 1380, 120)),  # past midnight into Sunday
        ("Fri 00:00-24:00", WeeklyWindow(4, 0, 1440)),  # the whole day
        ("Tue 08:00-08:00", WeeklyWindow(1, 480, 1440)),  # a full turn of the clock
    ],
)
def test_entries_parse(text, parsed):
    assert parse_entry(text) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "1 to 64 characters"),
        ("2026-02-30", "not a date"),
        ("2026-12-26..2026-12-24", "ends before it starts"),
        ("Sun 25:00-26:00", "not a time of day"),
        ("Sun 02:60-03:00", "not a time of day"),
        ("Sun 24:00-01:00", "opens before 24:00"),
        ("Dim 02:00-04:00", "not a weekday"),
        ("every sunday", "not a date"),
        ("x" * 65, "1 to 64 characters"),
    ],
)
def test_bad_entries_are_refused_with_the_reason(text, message):
    with pytest.raises(CalendarError, match=message):
        parse_entry(text)


MAINTENANCE = Blackout.of("maintenance", "Europe/Berlin", ["Sun 02:00-04:00"])
HOLIDAYS = Blackout.of("holidays", "Europe/Berlin", ["2026-12-25", "2026-12-31..2027-01-01"])


@pytest.mark.parametrize(
    ("instant", "reason"),
    [
        # Sunday 6 Dec 2026, Berlin is UTC+1: 02:00 local is 01:00 UTC.
        (utc(2026, 12, 6, 1, 0), "calendar 'maintenance' (Sun 02:00-04:00)"),
        (utc(2026, 12, 6, 2, 59, 59), "calendar 'maintenance' (Sun 02:00-04:00)"),
        (utc(2026, 12, 6, 3, 0), None),  # 04:00 local: the end is excluded
        (utc(2026, 12, 6, 0, 59, 59), None),
        (utc(2026, 12, 13, 1, 30), "calendar 'maintenance' (Sun 02:00-04:00)"),  # every week
        # Summer: Berlin is UTC+2, the same wall time is an hour earlier in UTC.
        (utc(2026, 7, 5, 0, 0), "calendar 'maintenance' (Sun 02:00-04:00)"),
        (utc(2026, 7, 5, 2, 0), None),
        # Holidays are local days: 25 Dec 00:30 Berlin is still 24 Dec in UTC.
        (utc(2026, 12, 24, 23, 30), "calendar 'holidays' (2026-12-25)"),
        (utc(2026, 12, 25, 23, 30), None),
        (utc(2027, 1, 1, 12, 0), "calendar 'holidays' (2026-12-31..2027-01-01)"),
    ],
)
def test_membership_is_decided_on_the_calendars_local_time(instant, reason):
    assert blackout_at([MAINTENANCE, HOLIDAYS], instant) == reason


def test_a_window_past_midnight_on_sunday_wraps_into_monday():
    late = Blackout.of("late", "UTC", ["Sun 23:00-01:00"])
    assert blackout_at([late], utc(2026, 12, 6, 23, 30)) is not None  # Sunday
    assert blackout_at([late], utc(2026, 12, 7, 0, 59)) is not None  # Monday, wrapped
    assert blackout_at([late], utc(2026, 12, 7, 1, 0)) is None


def test_no_calendar_blacks_out_nothing():
    assert blackout_at([], utc(2026, 12, 25, 12)) is None
