"""The engine's clock: this node's clock corrected to the database server's.

Every node measures its offset from the database's clock (at each election attempt and each heartbeat)
and a leader decides by ``local time + offset``, so nodes whose clocks disagree still agree on when a run
is due, missed or timed out. A node whose offset is beyond SCHEDULER_MAX_CLOCK_OFFSET refuses to lead
(the engine asks ``too_far``): a clock that far off is broken, and may jump again between measurements.

The local clock stays ``core.clock.utc_now``; this only adds the measured offset to it. SQLite has no
server clock (the database is a file on this machine): the offset is 0 there.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from django.db import connection

from core.clock import utc_now
from core.clock_offset import NO_OFFSET, ClockOffset, ClockSample, adopted, measured_offset


class MeasuredClock(Protocol):
    def __call__(self) -> datetime: ...

    def measure(self) -> ClockOffset | None:
        """Measure the offset from the database's clock and use it from now on; None: nothing to measure."""

# The server's clock, read now (not at the start of the transaction, as PostgreSQL's now() is).
SERVER_TIME_SQL = {
    "mysql": "SELECT UTC_TIMESTAMP(6)",
    "postgresql": "SELECT clock_timestamp()",
}
SAMPLES = 3  # the shortest of three round trips bounds the offset (core.clock_offset)
# A measurement whose best round trip took longer than twice this (a stalled database) does not replace a
# sharper one: it could move the clock by up to half its round trip.
MAX_ERROR_SECONDS = 0.1


class DatabaseClock:
    """Callable like ``utc_now``; ``measure()`` (database I/O, on the loop thread) updates the offset that
    every later call adds. Reads from other threads (the dispatcher's) see the old or the new offset."""

    def __init__(self, local: Callable[[], datetime] = utc_now) -> None:
        self.local = local
        self.offset = NO_OFFSET
        self._measured: ClockOffset | None = None

    def __call__(self) -> datetime:
        return self.local() + self.offset.correction

    def measure(self) -> ClockOffset | None:
        sql = SERVER_TIME_SQL.get(connection.vendor)
        if sql is None:  # SQLite: no server clock
            return None
        new = measured_offset([self._sample(sql) for _ in range(SAMPLES)])
        self.offset = self._measured = adopted(self._measured, new, MAX_ERROR_SECONDS)
        return self.offset

    def _sample(self, sql: str) -> ClockSample:
        with connection.cursor() as cursor:
            sent = self.local()
            cursor.execute(sql)
            server = cursor.fetchone()[0]
            received = self.local()
        return ClockSample(sent, server if server.tzinfo else server.replace(tzinfo=UTC), received)


class LocalClock:
    """A clock taken as the database's (tests with a fixed time): nothing to measure."""

    def __init__(self, local: Callable[[], datetime]) -> None:
        self.local = local

    def __call__(self) -> datetime:
        return self.local()

    def measure(self) -> ClockOffset | None:
        return None


def measured(clock: Callable[[], datetime] | None) -> MeasuredClock:
    """The engine's clock: the database-corrected one by default; a plain callable is used as it is."""
    if clock is None:
        return DatabaseClock()
    return clock if hasattr(clock, "measure") else LocalClock(clock)
