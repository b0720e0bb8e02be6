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



# --- cronie's meaning where croniter differs (README, "Cron expressions") ----------------------------------

T_2026 = at(2026, 1, 1)


def first(expression: str, count: int = 4, after: datetime = T_2026) -> list[str]:
    schedule, out = parse_cron(expression), []
    for _ in range(count):
        after = schedule.next_after(after)
        out.append(after.strftime("%a %Y-%m-%d %H:%M"))
    return out


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # a single-value range is that value, with or without a step (croniter widened it to the field)
        ("59-59 * * * *", ["Thu 2026-01-01 00:59", "Thu 2026-01-01 01:59", "Thu 2026-01-01 02:59",
                           "Thu 2026-01-01 03:59"]),
        ("0 0 1-1 1-1 *", ["Fri 2027-01-01 00:00", "Sat 2028-01-01 00:00", "Mon 2029-01-01 00:00",
                           "Tue 2030-01-01 00:00"]),
        ("54-54/3 * * * *", ["Thu 2026-01-01 00:54", "Thu 2026-01-01 01:54", "Thu 2026-01-01 02:54",
                             "Thu 2026-01-01 03:54"]),
        ("8 16-16 31 7-11 *", ["Fri 2026-07-31 16:08", "Mon 2026-08-31 16:08", "Sat 2026-10-31 16:08",
                               "Sat 2027-07-31 16:08"]),
        ("0 0 16-16 * * *", ["Thu 2026-01-01 16:00", "Fri 2026-01-02 16:00", "Sat 2026-01-03 16:00",
                             "Sun 2026-01-04 16:00"]),
        # a field starting with * ANDs the day fields: odd days that are Mondays
        ("0 0 */2 * 1", ["Mon 2026-01-05 00:00", "Mon 2026-01-19 00:00", "Mon 2026-02-09 00:00",
                         "Mon 2026-02-23 00:00"]),
        ("0 0 0 */2 * 1", ["Mon 2026-01-05 00:00", "Mon 2026-01-19 00:00", "Mon 2026-02-09 00:00",
                           "Mon 2026-02-23 00:00"]),
        ("0 0 1 * */3", ["Sun 2026-02-01 00:00", "Sun 2026-03-01 00:00", "Wed 2026-04-01 00:00",
                         "Wed 2026-07-01 00:00"]),
        # neither starts with *: ORed, the 1st or Monday
        ("0 0 1 * 1", ["Mon 2026-01-05 00:00", "Mon 2026-01-12 00:00", "Mon 2026-01-19 00:00",
                       "Mon 2026-01-26 00:00"]),
        ("0 0 30 2 1", ["Mon 2026-02-02 00:00", "Mon 2026-02-09 00:00", "Mon 2026-02-16 00:00",
                        "Mon 2026-02-23 00:00"]),
        # '#' and 'L' with a day of month follow the same rule
        ("43 7 */7 * 5#3", ["Fri 2026-05-15 07:43", "Fri 2027-01-15 07:43", "Fri 2027-10-15 07:43",
                            "Fri 2028-09-15 07:43"]),
        ("0 0 1 * 1#2", ["Mon 2026-01-12 00:00", "Sun 2026-02-01 00:00", "Mon 2026-02-09 00:00",
                         "Sun 2026-03-01 00:00"]),
        ("0 0 * * 5L", ["Fri 2026-01-30 00:00", "Fri 2026-02-27 00:00", "Fri 2026-03-27 00:00",
                        "Fri 2026-04-24 00:00"]),
        ("0 0 * * FRIL", ["Fri 2026-01-30 00:00", "Fri 2026-02-27 00:00", "Fri 2026-03-27 00:00",
                          "Fri 2026-04-24 00:00"]),
        ("0 0 * * 1,5L", ["Mon 2026-01-05 00:00", "Mon 2026-01-12 00:00", "Mon 2026-01-19 00:00",
                          "Mon 2026-01-26 00:00"]),
        ("0 0 15 * 5L", ["Thu 2026-01-15 00:00", "Fri 2026-01-30 00:00", "Sun 2026-02-15 00:00",
                         "Fri 2026-02-27 00:00"]),
        # 'a/n' runs to the end of the field; in day of week that is 7, Sunday (croniter read 7/5 as 0,5)
        ("0 0 * * 7/5", ["Sun 2026-01-04 00:00", "Sun 2026-01-11 00:00", "Sun 2026-01-18 00:00",
                         "Sun 2026-01-25 00:00"]),
        ("0 0 * * 2/5", ["Sun 2026-01-04 00:00", "Tue 2026-01-06 00:00", "Sun 2026-01-11 00:00",
                         "Tue 2026-01-13 00:00"]),
        ("0 0 ? * 1", ["Mon 2026-01-05 00:00", "Mon 2026-01-12 00:00", "Mon 2026-01-19 00:00",
                       "Mon 2026-01-26 00:00"]),
    ],
)
def test_fields_mean_what_cronie_means(expression, expected):
    assert first(expression) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 22-2 * * *", "the range '22-2' wraps around.*'22-23,0-2'"),
        ("0 0 * * FRI-SUN", "the range 'FRI-SUN' wraps around.*'5-7'"),
        ("0 0 0 * 11-2 *", "invalid month field: the range '11-2'"),
    ],
)
def test_wrapping_ranges_are_refused_with_the_split_to_write(expression, message):
    with pytest.raises(CronError, match=message):
        validate_cron(expression, T0)
