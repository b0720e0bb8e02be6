"""References for core.cron that nobody here wrote: cronsim (healthchecks.io's cron library) and a brute-force
oracle of our DST rule built on cronsim's wall-clock sequence, plus croniter for the record.

Run ``python -m tests.core.cron_reference [count]`` to print the disagreement counts of the engine on the
import path (point PYTHONPATH at another checkout to measure that one).
"""

from __future__ import annotations

import functools
import random
import re
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from cronsim import CronSim, CronSimError

from core.cron import CronError, parse_cron

ZONES = ("UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "America/Sao_Paulo",
         "Asia/Kolkata", "Pacific/Chatham")
FIRES = 12
_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


def _value(rng: random.Random, low: int, high: int, names=None) -> str:
    number = rng.randint(low, high)
    if names and rng.random() < 0.2 and number - low < len(names):
        return names[number - low]
    return str(number)


def _term(rng: random.Random, low: int, high: int, names=None) -> str:
    """One comma term, weighted towards the edges that broke before: ``a-a``, ``a-a/n``, ``*/n`` starts."""
    kind = rng.choice(("value", "value", "range", "same", "same_step", "range_step", "start_step", "star_step"))
    a = rng.randint(low, high)
    b = rng.randint(a, high)
    step = rng.choice((2, 3, 5, 7, 10, 15))
    return {
        "value": _value(rng, low, high, names),
        "range": f"{a}-{b}",
        "same": f"{a}-{a}",
        "same_step": f"{a}-{a}/{step}",
        "range_step": f"{a}-{b}/{step}",
        "start_step": f"{a}/{step}",
        "star_step": f"*/{step}",
    }[kind]


def _field(rng: random.Random, low: int, high: int, names=None, star: float = 0.35) -> str:
    if rng.random() < star:
        return "*"
    return ",".join(_term(rng, low, high, names) for _ in range(rng.choice((1, 1, 1, 2, 3))))


def _weekday_field(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.1:
        return f"{rng.randint(0, 6)}#{rng.randint(1, 5)}"
    if roll < 0.15:
        return f"{rng.randint(0, 6)}L"
    return _field(rng, 0, 7, _DAY_NAMES, star=0.5)


def random_expression(rng: random.Random, six_fields: bool = False) -> str:
    """An expression in the grammar cronsim and core.cron both accept (5 fields, or 6 with seconds first)."""
    day = "L" if rng.random() < 0.05 else _field(rng, 1, 31, star=0.5)
    fields = [_field(rng, 0, 59), _field(rng, 0, 23), day, _field(rng, 1, 12, _MONTH_NAMES, star=0.6),
              _weekday_field(rng)]
    if six_fields:
        fields.insert(0, rng.choice(("0", "0", "30", "*/20", "10-10", "15,45")))
    return " ".join(fields)


@functools.cache
def _transitions(zone_name: str, first_year: int = 2024, end_year: int = 2028) -> list[datetime]:
    """UTC instants (to the hour) in [first_year, end_year) where the zone's offset changes."""
    tz = ZoneInfo(zone_name)
    found, t = [], datetime(first_year, 1, 1, tzinfo=UTC)
    previous = t.astimezone(tz).utcoffset()
    while t < datetime(end_year, 1, 1, tzinfo=UTC):
        t += timedelta(hours=1)
        offset = t.astimezone(tz).utcoffset()
        if offset != previous:
            found.append(t)
        previous = offset
    return found


_TRANSITIONS = {name: _transitions(name) for name in ZONES if name != "UTC"}


def random_start(rng: random.Random, zone_name: str) -> datetime:
    """Half the starts fall within a day before a DST change of the zone, the rest anywhere in 2024-2027."""
    changes = _TRANSITIONS.get(zone_name)
    if changes and rng.random() < 0.5:
        return rng.choice(changes) - timedelta(seconds=rng.randint(0, 86_400))
    return datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 4 * 365 * 86_400))


# --- the references ---------------------------------------------------------------------------------------


def first_instant_at_or_after(wall: datetime, tz: ZoneInfo) -> datetime:
    """Our DST rule, stated once and brute-forced: a wall time fires at the first instant whose local time is
    at or after it (a repeated wall time: its first occurrence; a skipped one: the first instant after the
    gap). That instant shows the wall time exactly or starts an offset (offsets change on whole minutes), so
    scanning each minute of ±4 h around the naive guess, and its second ``wall.second``, is exhaustive;
    where the offset is the same at both ends the guess is already right."""
    guess = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    low, high = guess - timedelta(hours=4), guess + timedelta(hours=4)
    if low.astimezone(tz).utcoffset() == high.astimezone(tz).utcoffset():
        return guess
    minute = low.replace(second=0)
    while True:
        for t in (minute, minute + timedelta(seconds=wall.second)):
            if t.astimezone(tz).replace(tzinfo=None) >= wall:
                return t
        minute += timedelta(minutes=1)


_SAME_STEP = re.compile(r"^(\w+)-\1/\d+$")


def cronie_spelling(expression: str) -> str:
    """``a-a/n`` written as ``a``: cronie and core.cron read it so, cronsim reads it as ``a/n`` (``a`` to the
    end of the field in steps of ``n``). The references get this spelling; everything else is verbatim."""
    return " ".join(",".join(_SAME_STEP.sub(r"\1", term) for term in field.split(","))
                    for field in expression.split())


def oracle_fires(expression: str, zone_name: str, start: datetime, count: int = FIRES) -> list[datetime]:
    """cronsim's wall-clock sequence (naive datetimes: no DST handling at all) with our DST rule applied by
    brute force; instants that do not move forward (a repeated or collapsed gap time) are dropped."""
    tz = ZoneInfo(zone_name)
    walls = CronSim(cronie_spelling(expression), start.astimezone(tz).replace(tzinfo=None) - timedelta(hours=5))
    out: list[datetime] = []
    while len(out) < count:
        instant = first_instant_at_or_after(next(walls), tz)
        if instant > start and (not out or instant > out[-1]):
            out.append(instant)
    return out


def cronsim_fires(expression: str, zone_name: str, start: datetime, count: int = FIRES) -> list[datetime]:
    tz = ZoneInfo(zone_name)
    iterator = CronSim(cronie_spelling(expression), start.astimezone(tz))
    return [next(iterator).astimezone(UTC) for _ in range(count)]


def croniter_fires(expression: str, zone_name: str, start: datetime, count: int = FIRES) -> list[datetime]:
    iterator = croniter(expression, start.astimezone(ZoneInfo(zone_name)),
                        second_at_beginning=len(expression.split()) == 6)
    return [iterator.get_next(datetime).astimezone(UTC) for _ in range(count)]


def engine_fires(expression: str, zone_name: str, start: datetime, count: int = FIRES) -> list[datetime]:
    schedule, out, current = parse_cron(expression, zone_name), [], start
    for _ in range(count):
        current = schedule.next_after(current)
        out.append(current)
    return out


def attempt(function, *args):
    try:
        return function(*args)
    except (CronError, CronSimError, StopIteration, ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None  # croniter raises several of these for what it refuses
    except Exception as exc:  # croniter's CroniterError family
        return exc.__class__.__name__


@dataclass
class Case:
    expression: str
    zone_name: str
    start: datetime


def cases(count: int, seed: int = 17, six_fields: float = 0.0) -> list[Case]:
    """``count`` expressions, each in every zone of ZONES; a share ``six_fields`` of them with seconds."""
    rng = random.Random(seed)
    return [Case(expression, zone_name, random_start(rng, zone_name))
            for expression in (random_expression(rng, rng.random() < six_fields) for _ in range(count))
            for zone_name in ZONES]


def cronsim_walks_utc(expression: str) -> bool:
    """cronsim's DST mode: for a 6-field expression, or when the minute or hour starts with ``*``, it walks
    UTC instants (cronie's rule for such jobs: a repeated hour runs twice, a skipped wall time not at all)
    instead of applying one rule to every expression as core.cron does."""
    fields = expression.split()
    return len(fields) == 6 or fields[0].startswith("*") or fields[1].startswith("*")


def crosses_dst(case: Case, fires: list[datetime]) -> bool:
    changes = _transitions(case.zone_name, case.start.year, fires[-1].year + 1)
    return any(case.start - timedelta(hours=4) < change <= fires[-1] + timedelta(hours=4) for change in changes)


def classify_cronsim(case: Case, ours, simulated) -> str:
    """The known class a disagreement with cronsim belongs to, or "unexplained"."""
    if isinstance(ours, list) and isinstance(simulated, list) and cronsim_walks_utc(case.expression) and (
            case.zone_name != "UTC" and (crosses_dst(case, ours) or crosses_dst(case, simulated))):
        return "cronsim: walks UTC across a DST change"
    return "cronsim: unexplained"


def disagreements(all_cases: list[Case]) -> Counter:
    """Counts of cases whose first FIRES fires differ between the engine and each reference (cronsim's by
    class), and the examples of the ones no class explains."""
    counts: Counter = Counter()
    for case in all_cases:
        args = (case.expression, case.zone_name, case.start)
        ours = attempt(engine_fires, *args)
        counts["cases"] += 1
        counts["oracle"] += ours != attempt(oracle_fires, *args)
        simulated = attempt(cronsim_fires, *args)
        if ours != simulated:
            counts[classify_cronsim(case, ours, simulated)] += 1
        counts["croniter"] += ours != attempt(croniter_fires, *args)
    return counts


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    for name, value in sorted(disagreements(cases(count, six_fields=0.2)).items()):
        print(f"{name:40} {value}")
