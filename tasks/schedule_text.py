"""Schedules in words for the operators' console: "Every 10 seconds", "At 06:00, Monday through Friday"."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from cron_descriptor import ExpressionDescriptor, Options
from cron_descriptor.Exception import FormatException, MissingFieldException, WrongArgumentException

from core.cron import zone
from tasks.choices import ScheduleType
from tasks.models import Task
from tasks.selectors import preview_fires

# Fixed, not the machine's locale: the same words on every server, 24-hour clock (times are zoned, not AM/PM).
_OPTIONS = Options(locale_code="en_US", use_24hour_time_format=True)


@lru_cache(maxsize=2048)
def describe_cron(expression: str) -> str:
    """Words for a 5-field (minute first) or 6-field (second first) expression; "" if it cannot be read.

    cron-descriptor guesses what a 6-field expression means (seconds first, or a trailing year when the last
    field looks like one or a ``?`` sits in certain places). Our 6 fields always start with seconds, so a
    "every year" seventh field is added to make the reading unambiguous.
    """
    fields = expression.split()
    if len(fields) == 6:
        fields.append("*")
    elif len(fields) != 5:
        return ""
    try:
        return ExpressionDescriptor(" ".join(fields), _OPTIONS).get_description()
    except (FormatException, MissingFieldException, WrongArgumentException, ValueError, KeyError, IndexError):
        return ""


def describe_seconds(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0 and seconds >= size:
            count = seconds // size
            return f"Every {unit}" if count == 1 else f"Every {count} {unit}s"
    return "Every second" if seconds == 1 else f"Every {seconds} seconds"


def _at(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if moment else "—"


def describe_schedule(task: Task) -> str:
    """One line for any schedule type; cron expressions in another zone than UTC name it."""
    kind = task.schedule_type
    if kind == ScheduleType.INTERVAL:
        text = describe_seconds(task.interval_seconds) if task.interval_seconds else "Interval (not set)"
        return f"{text}, from {_at(task.start_at)}" if task.start_at else text
    if kind == ScheduleType.DATE:
        return f"Once at {_at(task.run_at)}"
    if kind == ScheduleType.ONCE:
        return "Once, as soon as active"
    text = describe_cron(task.cron_expression) or "Unreadable expression"
    zone_name = task.timezone or "UTC"
    return text if zone_name == "UTC" else f"{text} ({zone_name})"


def preview(task: Task, now: datetime, count: int = 5) -> dict:
    """The schedule in words and its next ``count`` fire times (UTC, and in the task's zone when not UTC)."""
    try:
        local = None if task.timezone in ("", "UTC") else zone(task.timezone)
        fires = preview_fires(task, now, count)
        description = describe_schedule(task)
    except ValueError as exc:  # CronError included
        return {"description": "", "fires": [], "error": str(exc)}
    return {
        "description": description,
        "fires": [
            {"utc": f"{fire:%Y-%m-%d %H:%M:%S} UTC", "iso": fire.isoformat(),
             "local": f"{fire.astimezone(local):%Y-%m-%d %H:%M:%S %Z}" if local else ""}
            for fire in fires
        ],
        "error": "",
    }
