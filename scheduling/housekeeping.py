"""The leader's periodic deletions: executions past retention (daily) and executor-message nonces too old to
be replayed (every minute). Each runs on a worker thread so the tick is not held up, never twice at once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor as ThreadPool
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import DatabaseError, close_old_connections

logger = logging.getLogger(__name__)


@dataclass
class PeriodicPurge:
    """``purge(now) -> rows deleted`` (or handled: ``verb`` says which), started at most once per ``every``."""

    name: str
    every: timedelta
    purge: Callable[[datetime], int]
    verb: str = "purged"
    next_at: datetime | None = None
    running: Future | None = field(default=None, repr=False)

    def start_if_due(self, now: datetime, pool: ThreadPool) -> bool:
        if self.next_at is not None and now < self.next_at:
            return False
        if self.running is not None and not self.running.done():
            return False
        self.next_at = now + self.every
        self.running = pool.submit(self._run, now)
        return True

    def _run(self, now: datetime) -> None:
        try:
            close_old_connections()
            deleted = self.purge(now)
            if deleted:
                logger.info("%s %s %s", self.verb, deleted, self.name)
        except DatabaseError as exc:
            logger.error("%s %s failed: %s", self.verb, self.name, exc)
