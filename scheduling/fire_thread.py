"""The leader's firing, on a thread of its own beside the loop thread that dispatches.

At a few thousand fires per second the leader's work is mostly waiting on the database: firing (the
compare-and-set of due tasks, the INSERT of their runs) and dispatching (claims, the checks before a POST).
One after the other on one connection their waits add up, and the loop thread was the limit while the
database had a core to spare (README "Capacity envelope"); on threads of their own, with a connection
each, they overlap.

The loop thread stays in charge of leadership: it takes the lock, confirms it, begins and ends terms. This
thread fires only while the term it began a round in is current, confirms the lock before a chunk when the
last confirmation is older than the engine's recheck interval (as the loop does between its steps), and
each of its writes commits through the fence, so a deposed leader's fire is refused by the database. What
it wrote (the runs fired ahead, ranked and signed for staging: ``Staging.prepared``) reaches the loop thread
through ``take_written``, which stages it (staging is the loop thread's alone); what an earlier term wrote
is dropped there, left pending for whoever leads now.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import DatabaseError, close_old_connections, connections

from scheduling.leader import Deposed

logger = logging.getLogger(__name__)

# After a database error, the thread waits this long before its next round (the loop does the same).
ERROR_PAUSE_SECONDS = 1.0

# fire(now, still_leading=, on_written=) -> the number of executions written; on_written(items) gets what each
# chunk wrote, in the form the loop thread takes it
Fire = Callable[..., int]


class FireThread:
    """``fire`` is the firing step (``scheduling.firing.fire_due`` with the node's fence). ``term()`` is the
    current leadership term (None while not leading), ``confirmed()`` whether the lock is still held (asked
    only if not confirmed recently). ``wake()`` tells the loop thread that items were handed over. When a
    round fires nothing the thread waits ``idle_seconds`` (or until ``nudge()``: leadership began)."""

    def __init__(self, *, fire: Fire, term: Callable[[], int | None], confirmed: Callable[[], bool],
                 clock: Callable[[], datetime], idle_seconds: float, wake: Callable[[], None]) -> None:
        self._fire = fire
        self._term = term
        self._confirmed = confirmed
        self._clock = clock
        self._idle_seconds = idle_seconds
        self._wake = wake
        self._written: collections.deque[tuple[int, list[Any]]] = collections.deque()
        self._stop = threading.Event()
        self._nudged = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="firing", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Ends the thread after its current round (a chunk's transaction is not cut short)."""
        self._stop.set()
        self._nudged.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def nudge(self) -> None:
        self._nudged.set()

    def take_written(self, term: int | None) -> list[Any]:
        """What was fired in ``term`` since the last call (loop thread). What another term fired is dropped: it
        is pending in the database, where the current leader finds it."""
        rows: list[Any] = []
        while self._written:
            written_term, chunk = self._written.popleft()
            if written_term == term:
                rows.extend(chunk)
        return rows

    def _run(self) -> None:
        while not self._stop.is_set():
            close_old_connections()
            term = self._term()
            if term is None:
                self._pause()
                continue
            try:
                fired = self.round(term)
            except Deposed as exc:  # the loop thread learns it on its own next fenced write or lock check
                logger.warning("firing stopped: %s", exc)
                fired = 0
            except DatabaseError as exc:
                logger.error("firing failed: %s", exc)
                self._stop.wait(ERROR_PAUSE_SECONDS)
                continue
            except Exception:  # never let the thread die: the node would lead without firing
                logger.exception("firing failed")
                self._stop.wait(ERROR_PAUSE_SECONDS)
                continue
            if not fired:
                self._pause()
        connections.close_all()  # this thread's own

    def round(self, term: int) -> int:
        """One firing step within ``term``. Returns the executions written."""
        def still_leading() -> bool:
            return self._term() == term and self._confirmed()

        if not still_leading():
            return 0
        return self._fire(self._clock(), still_leading=still_leading,
                          on_written=lambda rows: self._hand_over(term, rows))

    def _hand_over(self, term: int, rows: list[Any]) -> None:
        if rows:
            self._written.append((term, rows))
            self._wake()

    def _pause(self) -> None:
        self._nudged.wait(self._idle_seconds)
        self._nudged.clear()
