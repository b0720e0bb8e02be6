"""Cron expressions: parse, validate and compute fire times. Pure: no Django, no clock.

Two dialects are accepted (spec README, "Known disagreements"):
- 6 fields, seconds first: ``sec min hour day-of-month month day-of-week`` (spec 000's examples);
- 5 fields, classic: ``min hour day-of-month month day-of-week``.
Times are evaluated in UTC. Parsing a croniter iterator costs far more than advancing one, so parsed
schedules are cached per expression and re-pointed with ``set_current`` (see PITFALLS: 75-166 µs vs 20-71 µs).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import UTC, datetime

from croniter import CroniterBadDateError, CroniterError, croniter

SIX_FIELD_NAMES = ("second", "minute", "hour", "day of month", "month", "day of week")
FIVE_FIELD_NAMES = SIX_FIELD_NAMES[1:]
MAX_EXPRESSION_LENGTH = 100


class CronError(ValueError):
    """The expression cannot be used; the message says what is wrong in words an operator can act on."""


class CronSchedule:
    """A parsed expression. ``next_after`` is safe to call from several threads."""

    def __init__(self, expression: str, iterator: croniter, has_seconds: bool) -> None:
        self.expression = expression
        self.has_seconds = has_seconds
        self._iterator = iterator
        self._lock = threading.Lock()

    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after ``after`` (an aware datetime), as an aware UTC datetime."""
        with self._lock:
            self._iterator.set_current(after.astimezone(UTC), force=True)
            try:
                return self._iterator.get_next(datetime).astimezone(UTC).replace(fold=0)
            except CroniterBadDateError:
                raise CronError(f"'{self.expression}' has no fire time after {after.isoformat()}") from None

    def prev_before(self, before: datetime) -> datetime:
        """The last fire time strictly before ``before``, as an aware UTC datetime."""
        with self._lock:
            self._iterator.set_current(before.astimezone(UTC), force=True)
            try:
                return self._iterator.get_prev(datetime).astimezone(UTC).replace(fold=0)
            except CroniterBadDateError:
                raise CronError(f"'{self.expression}' has no fire time before {before.isoformat()}") from None


def _split(expression: str) -> list[str]:
    if not isinstance(expression, str) or not expression.strip():
        raise CronError("cron expression is empty")
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise CronError(f"cron expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise CronError(
            f"cron expression must have 6 fields (second minute hour day-of-month month day-of-week) "
            f"or 5 fields (minute hour day-of-month month day-of-week); got {len(fields)}"
        )
    return fields


def _build(fields: list[str], start: datetime) -> croniter:
    return croniter(" ".join(fields), start, second_at_beginning=len(fields) == 6)


def _explain_bad_field(fields: list[str], start: datetime) -> str:
    """Name the first field that croniter rejects on its own, so the message points at it."""
    names = SIX_FIELD_NAMES if len(fields) == 6 else FIVE_FIELD_NAMES
    for position, value in enumerate(fields):
        probe = ["*"] * len(fields)
        probe[position] = value
        try:
            _build(probe, start)
        except (CroniterError, ValueError, KeyError, IndexError):
            return f"invalid {names[position]} field '{value}'"
    return "the fields are individually valid but not together"


_CACHE: OrderedDict[str, CronSchedule] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 4096
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def parse_cron(expression: str) -> CronSchedule:
    """Parse and cache an expression; raise CronError with a precise message if it is unusable."""
    with _CACHE_LOCK:
        cached = _CACHE.get(expression)
        if cached is not None:
            _CACHE.move_to_end(expression)
            return cached
    fields = _split(expression)
    try:
        iterator = _build(fields, _EPOCH)
    except (CroniterError, ValueError, KeyError, IndexError):
        raise CronError(f"'{expression}': {_explain_bad_field(fields, _EPOCH)}") from None
    schedule = CronSchedule(expression, iterator, has_seconds=len(fields) == 6)
    with _CACHE_LOCK:
        _CACHE[expression] = schedule
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return schedule


def validate_cron(expression: str, now: datetime) -> CronSchedule:
    """Parse and also require a future fire time (``0 0 30 2 *``, February 30th, parses but never fires)."""
    schedule = parse_cron(expression)
    try:
        schedule.next_after(now)
    except CronError:
        raise CronError(f"'{expression}' never fires (no matching date)") from None
    return schedule
