"""Schedules in words (cron-descriptor), with our 6-field expressions read seconds first."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from core.cron import canonical_fields, days_are_anded, parse_cron
from tasks.models import Task
from tasks.schedule_text import describe_cron, describe_schedule, describe_seconds, preview
from tests.core.cron_reference import cases

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("expression", "words"), [
    ("*/10 * * * * *", "Every 10 seconds"),
    ("0 0 6 * * *", "At 06:00"),
    ("0 30 9 * * 1-5", "At 09:30, Monday through Friday"),
    ("*/5 * * * *", "Every 5 minutes"),
    ("15 10 * * *", "At 10:15"),
    ("0 0 12 ? * MON", "At 12:00, only on Monday"),
    ("30 15 10 * * *", "At 10:15:30"),
    ("0 */15 9-17 * * MON-FRI", "Every 15 minutes, between 09:00 and 17:59, Monday through Friday"),
])
def test_describe_cron_reads_five_and_six_field_expressions(expression, words):
    assert describe_cron(expression) == words


@pytest.mark.parametrize("expression", ["", "* *", "not a cron at all", "* * * * * * * *"])
def test_describe_cron_answers_empty_for_what_it_cannot_read(expression):
    assert describe_cron(expression) == ""


@pytest.mark.parametrize(("seconds", "words"), [(1, "Every second"), (45, "Every 45 seconds"), (60, "Every minute"),
                                                (90, "Every 90 seconds"), (7200, "Every 2 hours"),
                                                (86400, "Every day")])
def test_describe_seconds(seconds, words):
    assert describe_seconds(seconds) == words


def test_describe_schedule_names_a_zone_other_than_utc():
    task = Task(schedule_type="cron", cron_expression="0 0 6 * * *", timezone="Europe/Berlin")
    assert describe_schedule(task) == "At 06:00 (Europe/Berlin)"


def test_preview_lists_the_next_five_fire_times_in_utc_and_local_time():
    task = Task(schedule_type="cron", cron_expression="0 0 6 * * *", timezone="Europe/Berlin")
    figures = preview(task, NOW)
    assert figures["error"] == ""
    assert [fire["utc"] for fire in figures["fires"]] == [f"2030-01-0{day} 05:00:00 UTC" for day in range(2, 7)]
    assert figures["fires"][0]["local"] == "2030-01-02 06:00:00 CET"


def test_preview_reports_a_bad_expression_instead_of_raising():
    figures = preview(Task(schedule_type="cron", cron_expression="61 * * * *"), NOW)
    assert figures["fires"] == [] and "minute" in figures["error"]


# --- the words describe what the engine fires (core.cron's cronie rules) ----------------------------------

@pytest.mark.parametrize(("expression", "words"), [
    ("0 16-16 * * *", "At 16:00"),  # was "between 04:00 PM and 04:59 PM" while the engine fired hourly
    ("59-59 * * * *", "At 59 minutes past the hour"),
    ("0 0 1-1 1-1 *", "At 00:00, on day 1 of the month, only in January"),
    ("0 0 */2 * 1", "At 00:00, every 2 days, but only on Monday"),
    ("0 0 1 * 1", "At 00:00, on day 1 of the month, or on Monday"),
    ("0 0 1 * 1#2", "At 00:00, on day 1 of the month, or on the second Monday of the month"),
    ("43 7 */7 * 5#3", "At 07:43, every 7 days, but only on the third Friday of the month"),
    ("0 0 * * 5L", "At 00:00, on the last Friday of the month"),
    ("0 0 * * 1,5L", "At 00:00, only on Monday or on the last Friday of the month"),
    ("0 0 * * 7/5", "At 00:00, only on Sunday"),  # 7/5 is 7-7/5: Sunday alone
])
def test_describe_cron_says_what_the_engine_fires(expression, words):
    assert describe_cron(expression) == words


SPECIAL_FORMS = ["0 0 L * *", "0 0 15W * *", "0 0 ? * 1", "0 0 12 ? * MON", "0 0 * * 1-5/2", "0 0 * JAN-MAR/2 *",
                 "0 0 1 * 1#1,1#3", "0 0 0 L * 5L", "*/20 * * * * *", "0 0 * * SUN-SAT", "10/5 * * * *"]


def sample_expressions() -> list[str]:
    return SPECIAL_FORMS + sorted({case.expression for case in cases(300, seed=4, six_fields=0.2)})


def test_every_accepted_expression_has_words_that_follow_the_day_rule_and_never_widen_a_single_value():
    for expression in sample_expressions():
        parse_cron(expression)  # accepted by the API's validator (which also wants a future fire)
        words = describe_cron(expression)
        assert words, expression
        assert not re.search(r"between (day )?(\S+) and \2\b|\b(\w+) through \3\b", words), (expression, words)
        fields = canonical_fields(expression)
        if fields[-3] != "*" and fields[-1] != "*":
            expected = ", but only " if days_are_anded(fields) else ", or "
            assert expected in words, (expression, words)
