"""Cron expressions: parse, validate and compute fire times. Pure: no Django, no clock.

Two dialects are accepted (spec README, "Known disagreements"):
- 6 fields, seconds first: ``sec min hour day-of-month month day-of-week`` (spec 000's examples);
- 5 fields, classic: ``min hour day-of-month month day-of-week``.

The meaning is cronie's (what users' crontabs mean), where croniter differs (README, "Cron expressions"):
- a range ``a-a`` is the value ``a`` and ``a-a/n`` is ``a`` (croniter widens them to the whole field);
- a range must not wrap (``22-2`` is refused, as cronie refuses it; write ``22-23,0-2``);
- day of month and day of week are ANDed when either field starts with ``*`` (or ``?``), ORed otherwise
  (croniter ORs unless one is exactly ``*``, and mishandles ``#`` and ``L`` in either mode).
croniter stays the engine for each field set; the day rule is applied here by splitting an expression into
branches that croniter evaluates correctly (each with one day field ``*``, or with day-of-week terms that
croniter cannot mix kept apart) and taking the earliest (latest, backwards) fire among them.

Expressions are evaluated in a time zone (UTC by default). Outside UTC the schedule walks local wall-clock
times and maps each to an instant itself, because croniter's own DST handling has open bugs: a wall time
that does not exist (spring forward) fires once, at the first valid instant after the gap; a wall time that
occurs twice (fall back) fires once, at its first occurrence.

Parsing a croniter iterator costs far more than advancing one, so parsed schedules are cached per
expression and zone and re-pointed with ``set_current`` (see PITFALLS: 75-166 µs vs 20-71 µs).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

SIX_FIELD_NAMES = ("second", "minute", "hour", "day of month", "month", "day of week")
FIVE_FIELD_NAMES = SIX_FIELD_NAMES[1:]
MAX_EXPRESSION_LENGTH = 100

_MONTHS = {name: number for number, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}
_WEEKDAYS = {name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
FIELD_BOUNDS = {"second": (0, 59), "minute": (0, 59), "hour": (0, 23), "day of month": (1, 31), "month": (1, 12),
           "day of week": (0, 7)}
_RANGE = re.compile(r"^(\w+)-(\w+)(?:/(\w+))?$")
_START_STEP = re.compile(r"^(\w+)/(\d+)$")
_LAST_WEEKDAY = re.compile(r"^(\w+)L$", re.IGNORECASE)  # "5L": the month's last Friday


class CronError(ValueError):
    """The expression cannot be used; the message says what is wrong in words an operator can act on."""


# Enough steps to walk a per-second expression across a whole skipped or repeated hour.
_MAX_WALK_STEPS = 10_000


def zone(name: str) -> tzinfo:
    """The IANA zone ``name``; CronError if unknown."""
    if name in ("UTC", "Etc/UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"unknown time zone '{name}' (use an IANA name such as Europe/Berlin)") from None


def wall_to_instant(wall: datetime, tz: tzinfo) -> datetime:
    """The UTC instant of a naive local wall time: its first occurrence if repeated, and for a wall time
    inside a DST gap, the first valid instant after the gap."""
    instant = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == wall:
        return instant
    probe = wall.replace(second=0, microsecond=0)
    for _ in range(48 * 60):  # gaps are at most a few hours long
        probe += timedelta(minutes=1)
        instant = probe.replace(tzinfo=tz, fold=0).astimezone(UTC)
        if instant.astimezone(tz).replace(tzinfo=None) == probe:
            return instant
    raise CronError(f"no valid instant after {wall.isoformat()} in {tz}")


class CronSchedule:
    """A parsed expression in a time zone: the union of its branches (see the module docstring).
    ``next_after``/``prev_before`` are safe from several threads."""

    def __init__(self, expression: str, branches: list[croniter], has_seconds: bool, tz: tzinfo = UTC) -> None:
        self.expression = expression
        self.has_seconds = has_seconds
        self.tz = tz
        self._branches = branches
        self._lock = threading.Lock()

    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after ``after`` (an aware datetime), as an aware UTC datetime."""
        return self._walk(after, forward=True)

    def prev_before(self, before: datetime) -> datetime:
        """The last fire time strictly before ``before``, as an aware UTC datetime."""
        return self._walk(before, forward=False)

    def _walk(self, origin: datetime, *, forward: bool) -> datetime:
        found = []
        with self._lock:
            for branch in self._branches:
                try:
                    found.append(self._walk_branch(branch, origin, forward))
                except CroniterBadDateError:
                    continue  # this branch never fires (``30 2 *``); another one may
        if not found:
            direction = "after" if forward else "before"
            raise CronError(f"'{self.expression}' has no fire time {direction} {origin.isoformat()}")
        return min(found) if forward else max(found)

    def _walk_branch(self, branch: croniter, origin: datetime, forward: bool) -> datetime:
        if self.tz is UTC:
            branch.set_current(origin.astimezone(UTC), force=True)
            step = branch.get_next if forward else branch.get_prev
            return step(datetime).astimezone(UTC).replace(fold=0)
        # Walk naive wall times; skip any that map onto an instant on the wrong side of the origin (the
        # second pass of a repeated hour, or several gap times collapsing onto the same instant).
        branch.set_current(origin.astimezone(self.tz).replace(tzinfo=None), force=True)
        step = branch.get_next if forward else branch.get_prev
        for _ in range(_MAX_WALK_STEPS):
            instant = wall_to_instant(step(datetime), self.tz)
            if (instant > origin) if forward else (instant < origin):
                return instant
        raise CronError(f"'{self.expression}' found no fire time near {origin.isoformat()} in {self.tz}")


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


def _number(value: str, names: dict[str, int]) -> int | None:
    if value.isdigit():
        return int(value)
    return names.get(value.upper())


def _normalise_term(term: str, names: dict[str, int], field_name: str) -> str:
    """``a/n`` becomes ``a-last/n`` (croniter reads ``7/2`` in day of week as every other day); ``a-a`` and
    ``a-a/n`` become ``a``; a wrapping range is refused; anything else is left to croniter."""
    start_step = _START_STEP.match(term)
    if start_step and _number(start_step[1], names) is not None:
        term = f"{start_step[1]}-{FIELD_BOUNDS[field_name][1]}/{start_step[2]}"
    match = _RANGE.match(term)
    if not match:
        return term
    low, high = _number(match[1], names), _number(match[2], names)
    if low is None or high is None:
        return term
    if low == high:
        return match[1]
    if low > high:
        first, last = FIELD_BOUNDS[field_name]
        split = f"{low}-{last}" if high == first else f"{low}-{last},{first}-{high}"
        raise CronError(f"invalid {field_name} field: the range '{term}' wraps around; cron ranges run upwards "
                        f"(cronie refuses this too), so list both parts: '{split}'")
    return term


def stepped_values(term: str, field_name: str) -> list[int] | None:
    """The values of a stepped term (``*/7``, ``1-10/3``, ``JAN-MAR/2``) in a field of SIX_FIELD_NAMES;
    None for any other term."""
    first, last = FIELD_BOUNDS[field_name]
    names = _MONTHS if field_name == "month" else _WEEKDAYS if field_name == "day of week" else {}
    base, _, step = term.partition("/")
    if not step.isdigit() or int(step) == 0:
        return None
    if base == "*":
        return list(range(first, last + 1, int(step)))
    low, _, high = base.partition("-")
    low_number, high_number = _number(low, names), _number(high or str(last), names)
    if low_number is None or high_number is None:
        return None
    return list(range(low_number, high_number + 1, int(step)))


def _normalise_weekday_term(term: str) -> str:
    last = _LAST_WEEKDAY.match(term)
    day = _number(last[1], _WEEKDAYS) if last else None
    if day is not None:
        return f"L{day}"  # croniter spells "the last Friday" L5
    return _normalise_term(term, _WEEKDAYS, "day of week")


def canonical_fields(expression: str) -> list[str]:
    """The fields with single-value ranges collapsed (``16-16`` -> ``16``), wrapping ranges refused, and
    ``?`` read as ``*``: the expression the engine evaluates and the console describes."""
    fields = _split(expression)
    names = SIX_FIELD_NAMES if len(fields) == 6 else FIVE_FIELD_NAMES
    out = []
    for name, field in zip(names, fields, strict=True):
        field = "*" if field == "?" and name.startswith("day") else field
        lookup = _MONTHS if name == "month" else _WEEKDAYS if name == "day of week" else {}
        terms = [_normalise_term(term, lookup, name) for term in field.split(",")]
        out.append(",".join(terms))
    return out


def days_are_anded(fields: list[str]) -> bool:
    """cronie's rule: day of month AND day of week when either field starts with ``*``; otherwise OR."""
    return fields[-3].startswith("*") or fields[-1].startswith("*")


def _weekday_groups(weekday_field: str) -> list[str]:
    """croniter cannot mix plain days with ``#``/``L`` terms in one field: plain days stay together, each
    ``#``/``L`` term gets its own branch (``1,5L`` -> ``1`` or ``L5``)."""
    plain, special = [], []
    for term in weekday_field.split(","):
        term = _normalise_weekday_term(term)
        (special if ("#" in term or term.upper().startswith("L")) else plain).append(term)
    return ([",".join(plain)] if plain else []) + special


def _branch_fields(fields: list[str]) -> list[list[str]]:
    """Field sets whose union is the expression, each one croniter evaluates with day-of-month AND
    day-of-week: under cronie's OR rule, one branch keeps the day of month and one each day-of-week group."""
    head, day_of_month, month = fields[:-3], fields[-3], fields[-2]
    groups = _weekday_groups(fields[-1])
    if days_are_anded(fields):
        return [[*head, day_of_month, month, group] for group in groups]
    return [[*head, day_of_month, month, "*"]] + [[*head, "*", month, group] for group in groups]


def _build(fields: list[str], start: datetime) -> croniter:
    return croniter(" ".join(fields), start, second_at_beginning=len(fields) == 6, day_or=False)


def _explain_bad_field(fields: list[str], start: datetime) -> str:
    """Name the first field that croniter rejects on its own, so the message points at it."""
    names = SIX_FIELD_NAMES if len(fields) == 6 else FIVE_FIELD_NAMES
    for position, value in enumerate(fields):
        probe = ["*"] * len(fields)
        probe[position] = value
        try:
            for branch in _branch_fields(probe):
                _build(branch, start)
        except (CroniterError, ValueError, KeyError, IndexError):
            return f"invalid {names[position]} field '{value}'"
    return "the fields are individually valid but not together"


_CACHE: OrderedDict[str, CronSchedule] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 4096
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _fires_at_all(branch: croniter) -> bool:
    try:
        branch.get_next(datetime)
    except CroniterBadDateError:
        return False
    return True


def parse_cron(expression: str, timezone: str = "UTC") -> CronSchedule:
    """Parse and cache an expression for a zone; raise CronError with a precise message if unusable."""
    key = f"{timezone}|{expression}"
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            _CACHE.move_to_end(key)
            return cached
    tz = zone(timezone)
    fields = canonical_fields(expression)
    start = _EPOCH if tz is UTC else _EPOCH.replace(tzinfo=None)
    try:
        branches = [_build(branch, start) for branch in _branch_fields(fields)]
    except (CroniterError, ValueError, KeyError, IndexError):
        raise CronError(f"'{expression}': {_explain_bad_field(fields, _EPOCH)}") from None
    # A branch that never fires (the 30th of February in ``0 0 30 2 1``) would cost croniter a long search
    # on every call; cron fields repeat within a few decades, so none after 2000 means none ever.
    branches = [branch for branch in branches if _fires_at_all(branch)] or branches[:1]
    schedule = CronSchedule(expression, branches, has_seconds=len(fields) == 6, tz=tz)
    with _CACHE_LOCK:
        _CACHE[key] = schedule
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return schedule


def validate_cron(expression: str, now: datetime, timezone: str = "UTC") -> CronSchedule:
    """Parse and also require a future fire time (``0 0 30 2 *``, February 30th, parses but never fires)."""
    schedule = parse_cron(expression, timezone)
    try:
        schedule.next_after(now)
    except CronError:
        raise CronError(f"'{expression}' never fires (no matching date)") from None
    return schedule
