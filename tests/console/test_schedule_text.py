"""Schedules in words (cron-descriptor), with our 6-field expressions read seconds first."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tasks.models import Task
from tasks.schedule_text import describe_cron, describe_schedule, describe_seconds, preview

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
