"""Keeps an executor registered: retries the first registration and re-registers after an outage.

Why re-register at all: while the scheduler was away its health checks may have failed, or it may have come
back on an empty database. Registering again with the same instance_id is idempotent on the scheduler side
(200, same executor; the request is signed with this executor's secret, the proof the scheduler requires,
``scheduler_sdk.credentials``), so doing it after every detected outage is safe.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from scheduler_sdk.errors import RegistrationRefused, SchedulerAPIError, SchedulerError
from scheduler_sdk.outbox import RetryPolicy

log = logging.getLogger("scheduler_sdk.registration")


class RegistrationLoop:
    """Background loop over two steps: register when not registered, otherwise probe the scheduler.

    ``probe`` is a cheap call (``GET /api/v1/health``) made every ``heartbeat_interval`` seconds while
    things are fine and with ``retry`` backoff while the scheduler is unreachable. A probe that succeeds
    after failures triggers a re-registration, then ``on_recovered`` (used to flush pending results).
    """

    def __init__(
        self,
        register: Callable[[], Any],
        probe: Callable[[], Any],
        *,
        heartbeat_interval: float,
        retry: RetryPolicy,
        on_recovered: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._register = register
        self._probe = probe
        self._heartbeat = heartbeat_interval
        self._retry = retry
        self._on_recovered = on_recovered
        self._lock = threading.Lock()
        self._registered = False
        self._reachable = True
        self._failures = 0
        self._reported = "starting"  # the state last logged: one line per change of state, DEBUG otherwise
        self._clock = clock
        # Re-registrations asked for by refused signatures: paced by the retry policy, so a stream of refusals
        # cannot turn into a stream of registrations.
        self._forced = 0
        self._forced_not_before = float("-inf")
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scheduler-sdk-registration", daemon=True)
        self.registrations = 0

    @property
    def registered(self) -> bool:
        with self._lock:
            return self._registered

    @property
    def reachable(self) -> bool:
        with self._lock:
            return self._reachable

    def start(self, *, registered: bool) -> None:
        with self._lock:
            self._registered = registered
        self._thread.start()

    def mark_registered(self) -> None:
        """Records a registration made outside the loop (``Executor.register()``)."""
        with self._lock:
            self._registered, self._reachable, self._failures = True, True, 0
            self._reported = "registered"  # the executor logs the line ("registered as ... listening on ...")
            self.registrations += 1

    def failed_at_start(self, exc: Exception) -> None:
        """The executor's first registration failed: logged here, once, like the loop's own failures."""
        self._failed(exc, "registration")

    def mark_unreachable(self) -> None:
        """Called when another component failed to reach the scheduler: probe now rather than later.

        Only the first report of an outage wakes the loop; while it lasts the loop's own backoff paces
        the probes, however many results are failing to go out.
        """
        with self._lock:
            was_reachable, self._reachable = self._reachable, False
        if was_reachable:
            self._wake.set()

    def request_reregistration(self) -> None:
        """The scheduler refused our signature (its secret for us changed): register again to learn it.

        Only a registered loop is reset; while registering, the loop's own backoff paces the attempts. Requests
        are paced too: after one, the next is honoured only after the retry policy's delay (growing while they
        keep coming, reset once none came for the policy's maximum).
        """
        now = self._clock()
        with self._lock:
            if not self._registered or now < self._forced_not_before:
                return
            if now - self._forced_not_before > self._retry.maximum:
                self._forced = 0
            self._forced += 1
            self._forced_not_before = now + self._retry.delay(self._forced)
            was_registered, self._registered = self._registered, False
        if was_registered:
            log.warning("the scheduler refused this executor's signature; registering again for the current secret")
            self._wake.set()

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(2.0)

    def _run(self) -> None:
        while not self._closed.is_set():
            delay = self.step()
            self._wake.wait(delay)
            self._wake.clear()

    def step(self) -> float:
        """Does one unit of work; returns how long to wait before the next."""
        if not self.registered:
            return self._register_step()
        return self._probe_step()

    def _register_step(self) -> float:
        try:
            self._register()
        except SchedulerError as exc:
            return self._failed(exc, "registration")
        except Exception:  # keep the loop alive whatever went wrong; the next attempt may succeed
            log.exception("registration failed unexpectedly")
            return self._retry.maximum
        self.mark_registered()
        self._on_recovered()
        return self._heartbeat

    def _probe_step(self) -> float:
        try:
            self._probe()
        except Exception as exc:  # SchedulerError normally; anything else is treated as "not reachable" too
            with self._lock:
                self._reachable = False
            return self._failed(exc, "health probe")
        with self._lock:
            recovered = not self._reachable
            self._reachable, self._failures = True, 0
            if recovered:
                self._registered = False
        if recovered:
            self._report("reachable", logging.INFO, "scheduler reachable again, re-registering")
            return 0.0
        return self._heartbeat

    def _failed(self, exc: Exception, what: str) -> float:
        with self._lock:
            self._failures += 1
            failures = self._failures
        state = f"{what}: {type(exc).__name__} {getattr(exc, 'http_status', '')}"
        if isinstance(exc, SchedulerAPIError) and not exc.retryable:
            # A configuration problem (e.g. instance id taken, invalid task spec): retrying quickly
            # cannot fix it, but an operator can, so keep trying slowly and say so loudly.
            self._report(state, logging.ERROR, "%s rejected by the scheduler: %s (details %r); retrying every "
                         "%.0f s", what, exc, exc.details, self._retry.maximum)
            return self._retry.maximum
        delay = self._retry.delay(failures)
        level = logging.ERROR if isinstance(exc, RegistrationRefused) else logging.WARNING
        self._report(state, level, "%s failed (%s); retrying with backoff (next in %.1f s, at most every %.0f s)",
                     what, exc, delay, self._retry.maximum)
        return delay

    def _report(self, state: str, level: int, message: str, *args: Any) -> None:
        """Log one line per change of state; the same failure again is logged at DEBUG only."""
        with self._lock:
            changed, self._reported = self._reported != state, state
        log.log(level if changed else logging.DEBUG, message, *args)
