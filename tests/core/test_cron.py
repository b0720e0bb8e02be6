from datetime import UTC, datetime

import pytest

from core.cron import CronError, parse_cron, validate_cron

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/5 * * * * *", at(2024, 1, 1, 0, 0, 0), at(2024, 1, 1, 0, 0, 5)),  # 6 fields: seconds first
        ("0 */5 * * * *", at(2024, 1, 1, 0, 0, 0), at(2024, 1, 1, 0, 5, 0)),
        ("0 30 9-17 * * 1-5", at(2024, 1, 6, 12, 0, 0), at(2024, 1, 8, 9, 30, 0)),  # Saturday -> Monday
        ("*/15 * * * *", at(2024, 1, 1, 0, 0, 0), at(2024, 1, 1, 0, 15, 0)),  # 5 fields: minute first
        ("0 0 29 2 *", at(2024, 3, 1), at(2028, 2, 29)),  # leap day
        ("0 0 L * *", at(2024, 2, 1), at(2024, 2, 29)),  # last day of a leap February
        ("0 0 31 * *", at(2024, 4, 1), at(2024, 5, 31)),  # April has no 31st
        ("0 0 0 1 * *", at(2024, 12, 31, 23, 59, 59), at(2025, 1, 1)),  # year end
    ],
)
def test_next_after_follows_both_dialects(expression, after, expected):
    assert parse_cron(expression).next_after(after) == expected


def test_next_after_is_strictly_after_a_fire_time():
    assert parse_cron("*/1 * * * * *").next_after(at(2024, 1, 1, 0, 0, 5)) == at(2024, 1, 1, 0, 0, 6)


def test_prev_before_is_strictly_before():
    schedule = parse_cron("*/1 * * * * *")
    assert schedule.prev_before(at(2024, 1, 1, 0, 0, 5)) == at(2024, 1, 1, 0, 0, 4)


def test_results_are_utc_and_unfolded():
    value = parse_cron("*/1 * * * * *").prev_before(at(2024, 1, 1, 0, 0, 5))
    assert value.tzinfo == UTC and value.fold == 0


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "empty"),
        ("* * *", "got 3"),
        ("* * * * * * *", "got 7"),
        ("61 * * * * *", "invalid second field '61'"),
        ("* 25 * * *", "invalid hour field '25'"),
        ("a b c d e", "invalid minute field 'a'"),
        ("0 0 0 32 * *", "invalid day of month field '32'"),
        ("0 0 0 * 13 *", "invalid month field '13'"),
        ("0 0 0 * * 9", "invalid day of week field '9'"),
        ("0 0 30 2 *", "never fires"),
        ("* " * 60, "longer than 100"),
    ],
)
def test_invalid_expressions_say_what_is_wrong(expression, message):
    with pytest.raises(CronError, match=message):
        validate_cron(expression, T0)


def test_parsed_schedules_are_cached():
    assert parse_cron("0 0 * * * *") is parse_cron("0 0 * * * *")

