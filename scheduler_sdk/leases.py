"""Keeping the leases of the runs an executor holds (README "Leases").

Every ``interval`` seconds (the scheduler's ``renew_seconds``, 5 by default) one signed request names every
run this executor is running, with the attempt it accepted (``POST /executions/leases``). The scheduler
renews them and answers the ones it took away (``revoked``: lost, timed out, stopped, re-dispatched): their
handlers are cancelled. A renewal that fails is tried again sooner, with backoff and jitter, never later
than the interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from scheduler_sdk.errors import SchedulerAPIError, SchedulerError, SchedulerUnavailable
from scheduler_sdk.outbox import RetryPolicy

log = logging.getLogger("scheduler_sdk.leases")


class LeaseKeeper:
    """A background thread renewing ``held()`` (``[{execution_id, attempt}, ...]``) through ``renew``;
    ``on_revoked(ids)`` cancels the runs the scheduler took away, ``on_unreachable()`` and
    ``on_unauthorized()`` tell the registration loop."""

    def __init__(
        self,
        renew: Callable[[list[dict[str, Any]]], Any],
        held: Callable[[], list[dict[str, Any]]],
        on_revoked: Callable[[list[str]], None],
        *,
        interval: float,
        retry: RetryPolicy,
        on_unreachable: Callable[[], None] | None = None,
        on_unauthorized: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._renew = renew
        self._held = held
        self._on_revoked = on_revoked
        self._on_unreachable = on_unreachable
        self._on_unauthorized = on_unauthorized
        self.interval = interval
        self._retry = retry
        self._clock = clock
        self._failures = 0
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scheduler-sdk-leases", daemon=True)
        self.renewals = 0  # requests sent, answered or not

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join(2.0)

    def _run(self) -> None:
        delay = self.interval
        while not self._closed.wait(delay):
            delay = self.step()

    def step(self) -> float:
        """Renew once if anything is held; returns the wait before the next renewal."""
        runs = self._held()
        if not runs:
            return self.interval
        self.renewals += 1
        try:
            answer = self._renew(runs)
        except SchedulerError as exc:
            return self._failed(exc, len(runs))
        self._failures = 0
        if isinstance(answer, dict):
            revoked = [str(pk) for pk in answer.get("revoked") or ()]
            if revoked:
                log.warning("the scheduler took away the leases of %d runs: cancelling them", len(revoked))
                self._on_revoked(revoked)
            renew_seconds = answer.get("renew_seconds")
            if isinstance(renew_seconds, int | float) and renew_seconds > 0:
                self.interval = float(renew_seconds)
        return self.interval

    def _failed(self, exc: SchedulerError, held: int) -> float:
        self._failures += 1
        if isinstance(exc, SchedulerUnavailable) and self._on_unreachable is not None:
            self._on_unreachable()
        if isinstance(exc, SchedulerAPIError) and exc.http_status == 401 and self._on_unauthorized is not None:
            self._on_unauthorized()
        delay = min(self.interval, self._retry.delay(self._failures))
        log.warning("renewing the leases of %d runs failed (%s), retrying in %.1f s", held, exc, delay)
        return delay
