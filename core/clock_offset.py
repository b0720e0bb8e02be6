"""How far this node's clock is from the database server's, from timed queries. Pure: the caller reads both
clocks and hands the readings in.

One sample is the local time just before a query is sent, the server's time in its answer, and the local
time just after the answer arrived. The server read its clock somewhere in that round trip, so
``server - midpoint`` is the offset to within half the round trip. Of several samples, the one with the
shortest round trip bounds it most tightly (NTP's clock filter does the same).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class ClockSample:
    sent: datetime  # local clock, before the query
    server: datetime  # the database server's clock, in the answer
    received: datetime  # local clock, after the answer


@dataclass(frozen=True)
class ClockOffset:
    """The database's clock minus this node's: add ``seconds`` to the local time to get the database's.
    The true offset lies within ``error`` seconds of ``seconds``."""

    seconds: float
    error: float

    @property
    def correction(self) -> timedelta:
        return timedelta(seconds=self.seconds)


NO_OFFSET = ClockOffset(0.0, 0.0)


def measured_offset(samples: Iterable[ClockSample]) -> ClockOffset:
    """The offset from the sample with the shortest round trip. A local clock stepped back during a sample
    gives a negative round trip: it counts as an instant one (the bound cannot be known better)."""
    best = min(samples, key=lambda sample: sample.received - sample.sent)
    round_trip = max(timedelta(0), best.received - best.sent)
    midpoint = best.sent + (best.received - best.sent) / 2
    return ClockOffset((best.server - midpoint).total_seconds(), round_trip.total_seconds() / 2)


def adopted(previous: ClockOffset | None, new: ClockOffset, max_error: float) -> ClockOffset:
    """The offset to use from now on: the new measurement, unless even its best round trip was slow (a
    stalled database) and a sharper earlier one exists. Clocks drift by parts per million, so the earlier
    one stays good for far longer than a stall lasts; a slow measurement would move the clock by up to
    half its round trip."""
    if previous is None or new.error <= max_error or new.error <= previous.error:
        return new
    return previous


def too_far(offset: ClockOffset, limit: float) -> bool:
    """Whether the offset surely exceeds ``limit`` seconds, even at the near edge of its error bound: a slow
    round trip never makes a correct clock look wrong."""
    return abs(offset.seconds) - offset.error > limit


def describe(offset: ClockOffset) -> str:
    """'30.012 s ahead of the database's (±0.001 s)', for logs and the heartbeat row."""
    direction = "ahead of" if offset.seconds < 0 else "behind"
    return f"{abs(offset.seconds):.3f} s {direction} the database's (±{offset.error:.3f} s)"
