"""Delivery of execution results to the scheduler, retried until the scheduler has them.

A result is the one thing an executor must not lose: the scheduler may be restarting, failing over or
briefly unreachable exactly when a task ends. Reports wait in the outbox, kept in a file when ``path`` is
given (so an executor restarted meanwhile still delivers them), and are re-sent with exponential backoff and
jitter until the scheduler acknowledges them (2xx) or refuses them for good: 409/30002 "already final",
404 "unknown execution", ``not_yours`` (not dispatched to this executor). A refusal is final: the report is
dropped and logged once, never sent again (re-sending refused results is a flood, not a retry).

The reports due together go in one request (``POST /executions/callbacks``, up to MAX_CALLBACK_BATCH), each
settled by its own verdict. A scheduler without that endpoint gets one callback per report instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from scheduler_sdk.batching import batches
from scheduler_sdk.client import MAX_CALLBACK_BATCH, SchedulerClient, callback_body
from scheduler_sdk.errors import ErrorCode, SchedulerAPIError, SchedulerUnavailable

log = logging.getLogger("scheduler_sdk.outbox")
_jitter = random.Random()  # noqa: S311 - spreading retries, not security

# Upper bound of one idle wait, so an injected clock that jumps is noticed promptly.
_MAX_WAIT = 0.25
# A batch stays well under the scheduler's default request body limit (DATA_UPLOAD_MAX_MEMORY_SIZE, 1 MiB): a
# larger one would be refused whole (413) and its reports sent one by one.
MAX_BATCH_BYTES = 512 * 1024
# The scheduler's refusals of a signature start so (executors.channel); an older scheduler, which takes
# "callbacks" for an execution id, asks for API credentials instead.
_CHANNEL_REFUSALS = ("signature not valid", "unsigned request")
# A single callback's refusal of a result about a run not dispatched to this executor (executors.channel).
_NOT_YOURS = "not dispatched to this executor"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: ``initial``, ``initial*factor``, ... capped at ``maximum`` seconds, each delay
    shortened at random by up to ``jitter`` of itself, so executors that failed together do not come back
    together."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.factor < 1 or not 0 <= self.jitter < 1:
            raise ValueError(f"invalid retry policy {self}")

    def delay(self, failures: int, *, rng: random.Random | None = None) -> float:
        """Delay before the next attempt after ``failures`` (>= 1) consecutive failures."""
        exponent = min(max(failures - 1, 0), 64)  # bounded so a long outage cannot overflow the float
        full = min(self.maximum, self.initial * self.factor**exponent)
        return full * (1 - self.jitter * (rng or _jitter).random())

    @classmethod
    def coerce(cls, value: RetryPolicy | tuple[float, ...] | None) -> RetryPolicy:
        """Accepts a policy, a tuple ``(initial, maximum[, factor])`` or None (defaults)."""
        if value is None:
            return cls()
        if isinstance(value, RetryPolicy):
            return value
        return cls(*value)


@dataclass
class Report:
    """One execution result waiting to reach the scheduler."""

    execution_id: str
    status: str
    result: dict[str, Any] | None
    logs: str
    end_time: datetime
    attempt: int | None = None  # the attempt of the dispatch this result is of (README "Leases")
    failures: int = 0
    next_attempt_at: float = field(default=0.0, compare=False)


class Delivery(Enum):
    DELIVERED = "delivered"
    ALREADY_FINAL = "already_final"  # 409/30002: the scheduler finalised it itself (timeout sweep, stop)
    DROPPED = "dropped"  # the scheduler will never accept it (404 unknown execution, not_yours, 4xx bad report)
    RETRY = "retry"


class CallbackOutbox:
    """A background sender of :class:`Report` objects with retry and backoff.

    ``on_unreachable`` is called (from the sender thread) whenever the scheduler cannot be reached,
    so the owner can start watching for its return and re-register; ``on_unauthorized`` when it refuses
    a report's signature (401). Reports are signed by the client's auth hook at each attempt.
    """

    def __init__(
        self,
        client: SchedulerClient,
        *,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_unreachable: Callable[[], None] | None = None,
        on_unauthorized: Callable[[], None] | None = None,
        max_batch: int = MAX_CALLBACK_BATCH,
        path: str | os.PathLike | None = None,
    ) -> None:
        if not 1 <= max_batch <= MAX_CALLBACK_BATCH:
            raise ValueError(f"max_batch must be 1 to {MAX_CALLBACK_BATCH}, not {max_batch}")
        self._client = client
        self._max_batch = max_batch
        # False: one callback per report (the scheduler has no batch endpoint; set on its first refusal).
        self.batching = True
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self._on_unreachable = on_unreachable
        self._on_unauthorized = on_unauthorized
        self._queue: list[Report] = []
        # Every report not settled yet (queued or being sent), by execution: what the file holds.
        self._unsettled: dict[str, Report] = {}
        self._file = OutboxFile(path) if path is not None else None
        self._in_flight = 0
        self._closed = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.counts: dict[Delivery, int] = dict.fromkeys(Delivery, 0)

    def start(self) -> None:
        """Starts the sender; reports a previous process left in the file are sent first."""
        if self._file is not None:
            left = self._file.load()
            if left:
                log.info("%d results left unacknowledged by a previous run of this executor: sending them", len(left))
            for report in left:
                self.put(report)
        self._thread = threading.Thread(target=self._run, name="scheduler-sdk-outbox", daemon=True)
        self._thread.start()

    def put(self, report: Report) -> None:
        """Queues a report for immediate delivery (and, with a file, keeps it there until settled)."""
        with self._cond:
            report.next_attempt_at = self._clock()
            self._queue.append(report)
            self._unsettled[report.execution_id] = report
            self._record(lambda file: file.put(report))
            self._cond.notify_all()

    def unsettled(self) -> list[Report]:
        with self._cond:
            return list(self._unsettled.values())

    def find(self, execution_id: str) -> Report | None:
        """The report of ``execution_id`` if it is still waiting for the scheduler."""
        with self._cond:
            return self._unsettled.get(execution_id)

    def _record(self, change: Callable[[OutboxFile], None]) -> None:
        """Write a change to the file, if there is one (the caller holds the condition)."""
        if self._file is not None:
            try:
                change(self._file)
                self._file.compact_if_due(self._unsettled.values())
            except OSError as exc:
                log.error("could not write the outbox file %s: %s", self._file.path, exc)

    def retry_now(self) -> None:
        """Makes every waiting report due at once (the scheduler is known to be back)."""
        with self._cond:
            for report in self._queue:
                report.next_attempt_at = self._clock()
            self._cond.notify_all()

    def pending(self) -> int:
        """Reports not yet acknowledged, including one being sent."""
        with self._cond:
            return len(self._queue) + self._in_flight

    def flush(self, timeout: float) -> bool:
        """Waits up to ``timeout`` seconds for every report to be settled; True if none is left."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._in_flight:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, _MAX_WAIT))
            return True

    def close(self, timeout: float = 5.0) -> list[Report]:
        """Stops the sender thread; returns (and logs) the reports that could not be delivered."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._cond:
            lost = list(self._queue)
        for report in lost:
            log.error("execution %s: result %r was never acknowledged by the scheduler", report.execution_id,
                      report.status)
        return lost

    # -- sender thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            due = self._wait_for_due()
            if due is None:
                return
            for batch in self._batches(due):
                self._send(batch)

    def _batches(self, due: list[Report]) -> Iterator[list[Report]]:
        """``due`` in order, cut into batches of at most ``max_batch`` reports and about MAX_BATCH_BYTES."""
        return batches(due, max_items=self._max_batch, max_bytes=MAX_BATCH_BYTES, size_of=_encoded_size)

    def _send(self, reports: list[Report]) -> None:
        outcomes = self._deliver_batch(reports) if self.batching else None
        if outcomes is None:  # one by one: no batch endpoint, or a batch refused whole
            for report in reports:
                self._attempt(report)
        else:
            self._settle(reports, outcomes)

    def _wait_for_due(self) -> list[Report] | None:
        with self._cond:
            while not self._closed:
                now = self._clock()
                due = [report for report in self._queue if report.next_attempt_at <= now]
                if due:
                    self._queue = [report for report in self._queue if report.next_attempt_at > now]
                    self._in_flight += len(due)
                    return due
                self._cond.wait(self._idle_wait(now))
            return None

    def _idle_wait(self, now: float) -> float:
        if not self._queue:
            return _MAX_WAIT
        return max(0.0, min(min(r.next_attempt_at for r in self._queue) - now, _MAX_WAIT))

    def _attempt(self, report: Report) -> None:
        self._settle([report], [self._deliver(report)])

    def _settle(self, reports: list[Report], outcomes: list[Delivery]) -> None:
        """Retried reports of one request stay together: one (jittered) delay for all of them."""
        failures = 1 + max((r.failures for r, o in zip(reports, outcomes, strict=True) if o is Delivery.RETRY),
                           default=0)
        retry_at = self._clock() + self._retry.delay(failures)
        with self._cond:
            for report, outcome in zip(reports, outcomes, strict=True):
                self._in_flight -= 1
                self.counts[outcome] += 1
                if outcome is Delivery.RETRY:
                    report.failures += 1
                    report.next_attempt_at = retry_at
                    self._queue.append(report)
                else:
                    self._unsettled.pop(report.execution_id, None)
            settled = [r.execution_id for r, o in zip(reports, outcomes, strict=True) if o is not Delivery.RETRY]
            if settled:
                self._record(lambda file: file.done(settled))
            self._cond.notify_all()

    def _deliver_batch(self, reports: list[Report]) -> list[Delivery] | None:
        """One request for ``reports``; their outcomes in order, or None when they must go one by one."""
        items = [{"execution_id": r.execution_id, **callback_body(r.status, r.result, r.logs, r.end_time)}
                 for r in reports]
        try:
            answer = self._client.callback_batch(items)
        except SchedulerUnavailable as exc:
            log.warning("scheduler unreachable, will retry %d reports: %s", len(reports), exc)
            if self._on_unreachable is not None:
                self._on_unreachable()
            return [Delivery.RETRY] * len(reports)
        except SchedulerAPIError as exc:
            return self._batch_refused(reports, exc)
        except Exception:  # a bug (e.g. an unencodable report) must not kill the sender thread
            log.exception("could not send a batch of %d reports, sending them one by one", len(reports))
            return None
        return self._verdicts(reports, answer)

    def _batch_refused(self, reports: list[Report], exc: SchedulerAPIError) -> list[Delivery] | None:
        if 200 <= exc.http_status < 300:  # applied; only the answer's body was unreadable
            return [Delivery.DELIVERED] * len(reports)
        if _no_batch_endpoint(exc):
            log.info("the scheduler has no batch callback endpoint (%s): sending results one by one", exc)
            self.batching = False
            return None
        if exc.retryable:
            if exc.http_status == 401 and self._on_unauthorized is not None:
                self._on_unauthorized()
            log.warning("scheduler refused a batch of %d reports for now (%s), will retry", len(reports), exc)
            return [Delivery.RETRY] * len(reports)
        # Refused whole (one malformed report, too large...): one by one, each report meets its own answer.
        log.warning("scheduler refused a batch of %d reports (%s), sending them one by one", len(reports), exc)
        return None

    def _verdicts(self, reports: list[Report], answer: Any) -> list[Delivery]:
        by_id = {}
        if isinstance(answer, dict) and isinstance(answer.get("results"), list):
            by_id = {item.get("execution_id"): item.get("outcome") for item in answer["results"]
                     if isinstance(item, dict)}
        return [self._verdict(report, by_id.get(report.execution_id)) for report in reports]

    @staticmethod
    def _verdict(report: Report, outcome: str | None) -> Delivery:
        if outcome == "applied":
            log.info("execution %s: %s reported", report.execution_id, report.status)
            return Delivery.DELIVERED
        if outcome == "already_final":
            log.info("execution %s: already final on the scheduler, %s report not applied",
                     report.execution_id, report.status)
            return Delivery.ALREADY_FINAL
        if outcome == "not_found":
            log.error("execution %s: the scheduler does not know it, giving up the %s report",
                      report.execution_id, report.status)
            return Delivery.DROPPED
        if outcome == "not_yours":  # dispatched elsewhere since (this attempt was given up): final
            log.warning("execution %s: the scheduler gave the run to another executor, %s report dropped",
                        report.execution_id, report.status)
            return Delivery.DROPPED
        # An answer this SDK cannot read.
        log.warning("execution %s: scheduler did not take the %s report (%s), will retry", report.execution_id,
                    report.status, outcome or "no verdict")
        return Delivery.RETRY

    def _deliver(self, report: Report) -> Delivery:
        try:
            self._client.callback(report.execution_id, report.status, report.result, report.logs, report.end_time)
        except SchedulerUnavailable as exc:
            log.warning("execution %s: scheduler unreachable, will retry the %s report: %s",
                        report.execution_id, report.status, exc)
            if self._on_unreachable is not None:
                self._on_unreachable()
            return Delivery.RETRY
        except SchedulerAPIError as exc:
            return self._classify(report, exc)
        except Exception:  # a bug (e.g. an unencodable report) must not kill the sender thread
            log.exception("execution %s: could not send the %s report, giving up", report.execution_id,
                          report.status)
            return Delivery.DROPPED
        log.info("execution %s: %s reported", report.execution_id, report.status)
        return Delivery.DELIVERED

    def _classify(self, report: Report, exc: SchedulerAPIError) -> Delivery:
        if 200 <= exc.http_status < 300:  # applied; only the answer's body was unreadable
            return Delivery.DELIVERED
        if exc.http_status == 409 and exc.code == ErrorCode.EXECUTION_STATE_FORBIDS:
            log.info("execution %s: already final on the scheduler, %s report not applied",
                     report.execution_id, report.status)
            return Delivery.ALREADY_FINAL
        if exc.http_status == 401 and _NOT_YOURS in str(exc.error or exc):
            log.warning("execution %s: the scheduler gave the run to another executor, %s report dropped",
                        report.execution_id, report.status)
            return Delivery.DROPPED
        if exc.http_status == 401 and self._on_unauthorized is not None:
            self._on_unauthorized()  # kept and re-sent, signed afresh, once the executor has the current secret
        if exc.retryable:
            log.warning("execution %s: scheduler refused the report for now (%s), will retry",
                        report.execution_id, exc)
            return Delivery.RETRY
        # 404/30001 (unknown execution) or a report the scheduler rejects: retrying cannot change that.
        log.error("execution %s: scheduler rejected the %s report, giving up: %s (details %r)",
                  report.execution_id, report.status, exc, exc.details)
        return Delivery.DROPPED


def _no_batch_endpoint(exc: SchedulerAPIError) -> bool:
    """Whether the scheduler lacks POST /executions/callbacks: no route (404, 405), or an older one's router
    taking "callbacks" for an execution id and asking for API credentials (a 401 not from the signed channel)."""
    if exc.http_status in (404, 405):
        return True
    return exc.http_status == 401 and not str(exc.error or "").startswith(_CHANNEL_REFUSALS)


def _encoded_size(report: Report) -> int:
    """About the bytes ``report`` takes in a batch's JSON (logs and result dominate)."""
    try:
        result = len(json.dumps(report.result))
    except (TypeError, ValueError):
        result = 0  # sent alone, it meets its own error
    return 200 + len(report.logs.encode("utf-8", "replace")) * 2 + result


class OutboxFile:
    """The unsettled reports, as an append-only file of JSON lines: ``{"put": report}`` when a result is
    queued, ``{"done": [ids]}`` when reports are settled. Each line is written and flushed at once, so a
    process killed at any point (SIGKILL included) leaves every report it had queued and not settled; the file
    is rewritten with only those (atomically: write, fsync, rename) at start and whenever settled lines
    outnumber them, so it stays small however long the executor runs."""

    COMPACT_AFTER_LINES = 1000

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self._handle = None
        self._lines = 0

    def load(self) -> list[Report]:
        """The reports the file holds unsettled; the file is then rewritten with just those."""
        live: dict[str, Report] = {}
        try:
            with open(self.path, encoding="utf-8") as file:
                for line in file:
                    self._read(line, live)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.error("outbox file %s unreadable, starting empty: %s", self.path, exc)
        self.compact(live.values())
        return list(live.values())

    def _read(self, line: str, live: dict[str, Report]) -> None:
        try:
            entry = json.loads(line)
            if "put" in entry:
                item = entry["put"]
                live[item["execution_id"]] = Report(
                    item["execution_id"], item["status"], item.get("result"), item.get("logs", ""),
                    datetime.fromisoformat(item["end_time"]), item.get("attempt"))
            for execution_id in entry.get("done", ()):
                live.pop(execution_id, None)
        except (KeyError, TypeError, ValueError, AttributeError):
            log.error("outbox file %s: skipped an unreadable line (a write cut short?)", self.path)

    def put(self, report: Report) -> None:
        self._append({"put": {"execution_id": report.execution_id, "status": report.status,
                              "result": report.result, "logs": report.logs,
                              "end_time": report.end_time.isoformat(), "attempt": report.attempt}})

    def done(self, execution_ids: list[str]) -> None:
        self._append({"done": execution_ids})

    def compact_if_due(self, live: Iterable[Report]) -> None:
        reports = list(live)
        if self._lines > self.COMPACT_AFTER_LINES + 2 * len(reports):
            self.compact(reports)

    def compact(self, live: Iterable[Report]) -> None:
        """Rewrite the file with only ``live`` (write a temporary file, fsync, rename over the old one)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".outbox-")
        self._lines = 0
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                self._handle = file
                for report in live:
                    self.put(report)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        finally:
            self._handle = None

    def _append(self, entry: dict[str, Any]) -> None:
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open, closed on compact
        self._handle.write(json.dumps(entry) + "\n")
        self._handle.flush()  # in the kernel: survives the process, SIGKILL included
        self._lines += 1
