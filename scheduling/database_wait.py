"""Starting while the database is down: keep trying, with backoff, instead of exiting.

A running node rides out a database outage in its loop; a node (or ``quickstart``) started during one used
to exit on its first query. Both now wait here, logging each failed attempt, until the database answers or
they are asked to stop.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

from django.db import DatabaseError, connection

from core.policy import retry_delay_seconds

logger = logging.getLogger(__name__)

# First wait 0.5 s, doubling to at most 15 s: a database restarting is back within seconds and is found
# quickly; one down for long is asked four times a minute, not flooded.
FIRST_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 15.0


def until_database_answers(action: Callable[[], object], *, stop: threading.Event, what: str) -> bool:
    """Runs ``action`` (its first database work) until it gets through: True then, False if ``stop`` was
    set first. A failed attempt closes the connection so the next one opens a new one."""
    attempt = 0
    while not stop.is_set():
        attempt += 1
        try:
            action()
            return True
        except DatabaseError as exc:
            delay = retry_delay_seconds(attempt, base=FIRST_DELAY_SECONDS, cap=MAX_DELAY_SECONDS)
            logger.warning("%s: database unreachable (attempt %d): %s; next attempt in %.1f s",
                           what, attempt, exc, delay)
            with contextlib.suppress(DatabaseError):
                connection.close()
            stop.wait(delay)
    return False
