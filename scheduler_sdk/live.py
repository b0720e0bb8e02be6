"""Live executions: log lines and progress sent to the scheduler while handlers run.

One background thread serves every running execution of an executor. Handlers never wait on it: a log
line lands in the execution's :class:`~scheduler_sdk.context.LogTail` and progress in a one-slot mailbox
(the latest report wins). Each round (``flush_interval``) the thread sends, per execution, the lines not
yet streamed in small batches (``POST /executions/{id}/logs``) and the latest progress at most once per
``progress_interval`` (``POST /executions/{id}/progress``).

A streamed line leaves the LogTail, so the final callback carries only the rest and no line is stored
twice. When the scheduler cannot take lines (unreachable, an older version without the endpoint, or the
execution already final) they simply stay in the LogTail and travel with the result, as before streaming.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from scheduler_sdk.client import SchedulerClient
from scheduler_sdk.context import LogTail
from scheduler_sdk.errors import SchedulerAPIError, SchedulerUnavailable

log = logging.getLogger("scheduler_sdk.live")

# The scheduler's limits for one append: 1000 lines, each at most 8 KiB in UTF-8.
MAX_LINES_PER_APPEND = 1000
MAX_LINE_BYTES = 8 * 1024
MAX_BACKOFF_SECONDS = 10.0


def api_lines(text: str) -> list[str]:
    """The API's lines for one LogTail entry: a multi-line record split, over-long lines cut into pieces."""
    return [piece for line in text.split("\n") for piece in _pieces(line)]


def take_batch(entries: list[tuple[int, str]], max_lines: int = MAX_LINES_PER_APPEND) -> tuple[int, list[str]]:
    """``(last sequence number taken, lines)`` for the leading entries that fit in one append. The first
    entry is always taken, even when it alone has more lines than one append takes."""
    last_seq, lines = entries[0][0], api_lines(entries[0][1])
    if len(lines) > max_lines:
        return last_seq, lines
    for seq, text in entries[1:]:
        more = api_lines(text)
        if len(lines) + len(more) > max_lines:
            break
        last_seq, lines = seq, lines + more
    return last_seq, lines


def _pieces(line: str) -> list[str]:
    if len(line.encode()) <= MAX_LINE_BYTES:
        return [line]
    pieces, current, size = [], [], 0
    for char in line:
        width = len(char.encode(errors="replace"))
        if size + width > MAX_LINE_BYTES:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += width
    pieces.append("".join(current))
    return pieces


@dataclass
class _Live:
    """Streaming state of one execution (guarded by the stream's condition)."""

    execution_id: str
    capture: LogTail
    logs_on: bool = True
    progress_on: bool = True
    progress: tuple[float, str | None] | None = None
    progress_sent_at: float | None = None
    failures: int = 0
    retry_at: float = 0.0
    sending: bool = False
    sealed: bool = False


class LiveStream:
    """The background sender. ``attach`` an execution when it starts, ``seal`` it when it ends."""

    def __init__(
        self,
        client: SchedulerClient,
        *,
        flush_interval: float = 0.5,
        progress_interval: float = 1.0,
        batch_lines: int = 200,
        batch_bytes: int = 256 * 1024,
        seal_timeout: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.flush_interval = flush_interval
        self.progress_interval = progress_interval
        self.batch_lines = max(1, min(batch_lines, MAX_LINES_PER_APPEND))
        self.batch_bytes = batch_bytes
        self.seal_timeout = seal_timeout
        self._clock = clock
        self._runs: dict[str, _Live] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._unsupported = False  # the scheduler has no live endpoints (an older version): stop trying
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="scheduler-sdk-live", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 1.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def attach(self, execution_id: str, capture: LogTail, *, stream_logs: bool = True) -> None:
        """Starts streaming an execution's progress and, with ``stream_logs``, its log lines."""
        with self._cond:
            self._runs[execution_id] = _Live(execution_id, capture, logs_on=stream_logs)

    def progress(self, execution_id: str, percent: float, step: str | None) -> None:
        """Keeps the latest report for sending (never blocks on the network)."""
        with self._cond:
            live = self._runs.get(execution_id)
            if live is None or live.sealed or not live.progress_on:
                return
            previous_step = live.progress[1] if live.progress else None
            # A report without a step keeps the step of one not sent yet, as the scheduler would.
            live.progress = (percent, step if step is not None else previous_step)
            if live.progress_sent_at is None:
                self._cond.notify_all()  # the first report goes out at once

    def seal(self, execution_id: str) -> None:
        """The execution ended: stream nothing more for it. Waits (up to ``seal_timeout``) for a batch in
        flight, so the result carries exactly the lines the scheduler did not get."""
        end = time.monotonic() + self.seal_timeout
        with self._cond:
            live = self._runs.pop(execution_id, None)
            if live is None:
                return
            live.sealed = True
            while live.sending and (remaining := end - time.monotonic()) > 0:
                self._cond.wait(remaining)

    # -- sender thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                self._cond.wait(self.flush_interval)
                if self._closed:
                    return
                runs = [] if self._unsupported else list(self._runs.values())
            for live in runs:
                try:
                    self._send_progress(live)
                    self._send_logs(live)
                except Exception:  # a bug here must not stop streaming for every other execution
                    log.exception("execution %s: live streaming failed", live.execution_id)

    def _claim(self, live: _Live, *, logs: bool) -> bool:
        """Marks ``live`` as sending if it may send now."""
        with self._cond:
            if live.sealed or self._unsupported or not (live.logs_on if logs else live.progress_on):
                return False
            if self._clock() < live.retry_at:
                return False
            live.sending = True
            return True

    def _release(self, live: _Live) -> None:
        with self._cond:
            live.sending = False
            self._cond.notify_all()

    def _send_logs(self, live: _Live) -> None:
        for _ in range(20):  # bounded per round, so one chatty execution cannot starve the others
            if not self._claim(live, logs=True):
                return
            try:
                entries = live.capture.unstreamed(self.batch_lines, self.batch_bytes)
                if not entries:
                    return
                last_seq, lines = take_batch(entries)
                # More than one append only for a single record of over 1000 lines; if a later part
                # fails, the earlier parts are sent again with the rest (duplicated, never lost).
                for start in range(0, len(lines), MAX_LINES_PER_APPEND):
                    self._client.append_logs(live.execution_id, lines[start:start + MAX_LINES_PER_APPEND])
                live.capture.mark_streamed(last_seq)  # before release, so seal() sees it
                live.failures = 0
            except (SchedulerUnavailable, SchedulerAPIError) as exc:
                self._failed(live, exc, channel="logs")
                return
            finally:
                self._release(live)

    def _send_progress(self, live: _Live) -> None:
        with self._cond:
            report = live.progress
            due = report is not None and (
                live.progress_sent_at is None or self._clock() - live.progress_sent_at >= self.progress_interval
            )
        if not due or not self._claim(live, logs=False):
            return
        try:
            percent, step = report
            self._client.report_progress(live.execution_id, percent, step)
            with self._cond:
                if live.progress == report:
                    live.progress = None
                live.progress_sent_at = self._clock()
            live.failures = 0
        except (SchedulerUnavailable, SchedulerAPIError) as exc:
            self._failed(live, exc, channel="progress")
        finally:
            self._release(live)

    def _failed(self, live: _Live, exc: Exception, *, channel: str) -> None:
        if isinstance(exc, SchedulerAPIError) and not exc.retryable:
            if exc.http_status in (404, 405) and exc.code in (404, 405):  # no such route: an older scheduler
                log.warning("the scheduler has no live execution endpoints (%s); streaming is off", exc)
                with self._cond:
                    self._unsupported = True
                return
            # 30001 unknown, 30002 already final, or a refused body: stop this channel for this run.
            log.info("execution %s: %s no longer streamed: %s", live.execution_id, channel, exc)
            with self._cond:
                if channel == "logs":
                    live.logs_on = False
                else:
                    live.progress_on = False
            return
        live.failures += 1
        delay = min(MAX_BACKOFF_SECONDS, self.flush_interval * 2 ** min(live.failures, 10))
        live.retry_at = self._clock() + delay
        log.debug("execution %s: %s not streamed, retrying in %.1f s: %s", live.execution_id, channel, delay, exc)
