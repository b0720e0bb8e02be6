"""One background thread firing deadlines, instead of a ``threading.Timer`` thread per execution."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("scheduler_sdk.timers")

# Upper bound of one wait, so an injected clock that jumps forward is noticed promptly.
_MAX_WAIT = 0.25


class Timers:
    """Runs callbacks at ``clock()`` instants on a single daemon thread.

    Callbacks must be quick (they only flip state and queue work); a slow one delays the others.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()  # tie-breaker: callables are not comparable
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="scheduler-sdk-timers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._seq), callback))
            self._cond.notify()

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        self.call_at(self._clock() + delay, callback)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(1.0)

    def _run(self) -> None:
        while True:
            callback = self._next_due()
            if callback is None:
                return
            try:
                callback()
            except Exception:  # one broken timer must not stop the others
                log.exception("timer callback failed")

    def _next_due(self) -> Callable[[], None] | None:
        with self._cond:
            while not self._closed:
                now = self._clock()
                if self._heap and self._heap[0][0] <= now:
                    return heapq.heappop(self._heap)[2]
                wait = _MAX_WAIT if not self._heap else min(self._heap[0][0] - now, _MAX_WAIT)
                self._cond.wait(wait)
            return None
