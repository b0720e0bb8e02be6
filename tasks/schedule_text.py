"""Schedules in words for the operators' console: "Every 10 seconds", "At 06:00, Monday through Friday"."""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache

from cron_descriptor import ExpressionDescriptor, Options
from cron_descriptor.Exception import FormatException, MissingFieldException, WrongArgumentException

from core.cron import SIX_FIELD_NAMES, CronError, canonical_fields, days_are_anded, stepped_values, zone
from tasks.choices import ScheduleType
from tasks.models import Task
from tasks.selectors import preview_fires

# Fixed, not the machine's locale: the same words on every server, 24-hour clock (times are zoned, not AM/PM).
_OPTIONS = Options(locale_code="en_US", use_24hour_time_format=True)


@lru_cache(maxsize=2048)
def describe_cron(expression: str) -> str:
    """Words for a 5-field (minute first) or 6-field (second first) expression; "" if it cannot be read.

    The words describe what the engine fires, not what cron-descriptor would guess: the expression is first
    put in the engine's canonical spelling (``16-16`` is ``16``, ``7/5`` in day of week is Sunday), and the
    day fields are joined by cronie's rule (core.cron): "or" when both are set and neither starts with ``*``,
    "but only" when both are set and one does. cron-descriptor describes each part; our 6 fields always
    start with seconds, so a seventh "every year" field keeps it from reading the last one as a year.
    """
    try:
        fields = canonical_fields(expression)
    except CronError:
        return ""
    if len(fields) == 5:
        fields.insert(0, "0")
    anded = days_are_anded(fields)  # decided on the fields as written: spelling out may drop a leading *
    fields = [_spell_out_stepped_lists(field, name) for field, name in zip(fields, SIX_FIELD_NAMES, strict=True)]
    try:
        return _compose(fields, anded)
    except (FormatException, MissingFieldException, WrongArgumentException, ValueError, KeyError, IndexError):
        return ""


def _spell_out_stepped_lists(field: str, name: str) -> str:
    """cron-descriptor cannot read a step inside a list (``1,*/7``) and reads day-of-week steps oddly (``0/7``
    as "every 7 days of the week, Sunday through Sunday"): such terms become their values, in order."""
    if "/" not in field or ("," not in field and name != "day of week"):
        return ",".join(sorted(field.split(","), key=int)) if re.fullmatch(r"[\d,]+", field) else field
    terms: list[str] = []
    for term in field.split(","):
        values = stepped_values(term, name)
        terms.extend([term] if values is None else [str(value) for value in values])
    if name == "day of week":  # 7 is Sunday, as 0 is
        terms = ["0" if term == "7" else term for term in terms]
    terms = list(dict.fromkeys(terms))
    return ",".join(sorted(terms, key=int) if all(term.isdigit() for term in terms) else terms)


def _descriptor(fields: list[str]) -> ExpressionDescriptor:
    return ExpressionDescriptor(" ".join([*fields, "*"]), _OPTIONS)


def _compose(fields: list[str], anded: bool) -> str:
    """Time, day of month, day of week and month, each part in cron-descriptor's words, then its trimming
    ("every minute, every hour" dropped) and casing."""
    second, minute, hour, day, month, weekday = fields
    common = _descriptor([second, minute, hour, day, month, "*"])
    time_words, day_words = common.get_time_of_day_description(), common.get_day_of_month_description()
    month_words = common.get_month_description()
    if weekday == "*":
        words = f"{time_words}{day_words}{month_words}"
    elif day == "*":
        words = f"{time_words}, {_weekday_words(fields)}{month_words}"
    else:
        joiner = "but only" if anded else "or"
        words = f"{time_words}{day_words}, {joiner} {_weekday_words(fields).removeprefix('only ')}{month_words}"
    words = common.transform_verbosity(words, use_verbose_format=_OPTIONS.verbose)
    return ExpressionDescriptor.transform_case(words, _OPTIONS.casing_type)


def _weekday_words(fields: list[str]) -> str:
    """The day-of-week field, one clause per term kind: cron-descriptor reads ``1,5L`` as "the last Monday
    and Friday", so plain days and each ``#``/``L`` term are described apart and joined with "or"."""
    plain, special = [], []
    for term in fields[-1].split(","):
        (special if ("#" in term or term.upper().endswith("L")) else plain).append(term)
    groups = ([",".join(plain)] if plain else []) + special
    clauses = [_descriptor([*fields[:3], "*", "*", group]).get_day_of_week_description() for group in groups]
    return " or ".join(clause.removeprefix(", ") for clause in clauses)


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
