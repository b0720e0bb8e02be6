"""What a task handler sees of its execution: parameters, a captured logger and cancellation."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DEFAULT_MAX_LOG_BYTES = 64 * 1024
MAX_PROGRESS_STEP_CHARS = 255
# Parent of every execution logger: records propagate here, so an application's logging configuration
# also sees them (filter or route by this name).
TASK_LOGGER_NAME = "scheduler_sdk.task"

_logger_ids = itertools.count()


class ExecutionCancelled(Exception):
    """Raised by :meth:`ExecutionContext.check_cancelled` once the execution was stopped or timed out."""


class LogTail(logging.Handler):
    """Keeps the last ``max_bytes`` (UTF-8) of formatted records not yet streamed, marking what was dropped.

    The tail is kept rather than the head because the end of a log usually explains the outcome. Lines
    the live stream delivered (:meth:`mark_streamed`) leave the buffer, so the final callback carries
    only what the scheduler does not have yet; with no streaming it carries everything, as it always did.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_LOG_BYTES) -> None:
        super().__init__()
        self.max_bytes = max_bytes
        self._lines: deque[tuple[int, str]] = deque()  # (sequence number, line), oldest first
        self._next_seq = 0
        self._size = 0
        self._dropped = 0
        formatter = logging.Formatter("%(asctime)s.%(msecs)03dZ %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")
        formatter.converter = time.gmtime  # UTC, matching the scheduler's timestamps
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.append(self.format(record))
        except Exception:  # a broken record must not break the handler that logged it
            self.handleError(record)

    def append(self, line: str) -> None:
        """Adds one line (a record may span several, e.g. a traceback) and trims the head to the cap."""
        size = len(line.encode()) + 1
        with self.lock:  # logging.Handler's own lock; several threads may log for one execution
            self._lines.append((self._next_seq, line))
            self._next_seq += 1
            self._size += size
            while self._size > self.max_bytes and len(self._lines) > 1:
                _, dropped = self._lines.popleft()
                self._size -= len(dropped.encode()) + 1
                self._dropped += len(dropped.encode()) + 1

    def unstreamed(self, max_lines: int, max_bytes: int) -> list[tuple[int, str]]:
        """The oldest held lines, at most ``max_lines`` and about ``max_bytes`` (at least one line)."""
        batch: list[tuple[int, str]] = []
        size = 0
        with self.lock:
            for seq, line in self._lines:
                size += len(line.encode()) + 1
                if batch and (len(batch) >= max_lines or size > max_bytes):
                    break
                batch.append((seq, line))
        return batch

    def mark_streamed(self, upto_seq: int) -> None:
        """Lines up to ``upto_seq`` reached the scheduler: forget them (they are not dropped output)."""
        with self.lock:
            while self._lines and self._lines[0][0] <= upto_seq:
                _, line = self._lines.popleft()
                self._size -= len(line.encode()) + 1

    def text(self) -> str:
        """The held log, preceded by a truncation marker when earlier output was dropped."""
        with self.lock:
            body = "\n".join(line for _, line in self._lines)
            dropped = self._dropped
        encoded = body.encode()
        if len(encoded) > self.max_bytes:  # a single line larger than the whole cap
            dropped += len(encoded) - self.max_bytes
            body = encoded[-self.max_bytes :].decode(errors="ignore")
        if dropped:
            return f"[... {dropped} bytes of earlier log output truncated ...]\n{body}"
        return body


def new_execution_logger(
    execution_id: str, capture: LogTail, level: int = logging.INFO
) -> logging.Logger:
    """A logger writing to ``capture`` and propagating to ``scheduler_sdk.task``.

    It is built directly instead of through ``logging.getLogger`` because the logging manager keeps
    every named logger forever, which would leak one logger per execution in a long-lived executor.
    """
    logger = logging.Logger(f"{TASK_LOGGER_NAME}.{execution_id}.{next(_logger_ids)}", level)
    logger.parent = logging.getLogger(TASK_LOGGER_NAME)
    logger.addHandler(capture)
    return logger


@dataclass(frozen=True)
class ExecutionContext:
    """One execution as seen by its handler.

    ``cancelled`` is set when the scheduler asks to stop the execution, when it overruns
    ``timeout_seconds`` and when the executor shuts down. Handlers doing long work should call
    :meth:`check_cancelled` (or use :meth:`sleep`) between steps; a handler that never looks is not
    interrupted, but its late result is discarded after a timeout.

    All fields have defaults so handlers can be unit-tested with ``ExecutionContext(parameters={...})``.
    """

    execution_id: str = "local"
    task_id: str = ""
    task_name: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    timeout_seconds: float | None = None
    retry_count: int = 0
    scheduled_time: datetime | None = None
    # Broadcast tasks: every executor gets one shard of each fire, shard_index in 0..shard_total-1, so a
    # handler can split its work (e.g. ``rows[shard_index::shard_total]``). None for any other task.
    shard_index: int | None = None
    shard_total: int | None = None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger(TASK_LOGGER_NAME), repr=False)
    cancelled: threading.Event = field(default_factory=threading.Event, repr=False)
    deadline: float | None = field(default=None, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    # Where progress goes: the executor's live stream (None when the context is built by hand).
    progress_sink: Callable[[str, float, str | None], None] | None = field(default=None, repr=False)

    def log(self, message: str, level: int = logging.INFO) -> None:
        """Logs one line for this execution: streamed to the scheduler within about a second (in the
        background; this never waits on the network) and, if it was not streamed, sent with the result."""
        self.logger.log(level, "%s", message)

    def progress(self, percent: float, step: str | None = None) -> None:
        """Reports progress (0 to 100) and optionally the current step (at most 255 characters).

        Never blocks: the executor sends the latest report in the background, at most about once a second
        per execution, so calling this in a tight loop is fine. ``step`` None keeps the previous step.
        """
        if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 <= percent <= 100:
            raise ValueError(f"percent must be a number from 0 to 100, got {percent!r}")
        if step is not None and (not isinstance(step, str) or len(step) > MAX_PROGRESS_STEP_CHARS):
            raise ValueError(f"step must be a string of at most {MAX_PROGRESS_STEP_CHARS} characters")
        if self.progress_sink is not None:
            self.progress_sink(self.execution_id, float(percent), step)

    def check_cancelled(self) -> None:
        """Raises :class:`ExecutionCancelled` if the execution was stopped or has timed out."""
        if self.cancelled.is_set():
            raise ExecutionCancelled(f"execution {self.execution_id} was cancelled")

    def sleep(self, seconds: float) -> None:
        """Sleeps up to ``seconds``, waking early (and raising ExecutionCancelled) on cancellation."""
        if self.cancelled.wait(max(0.0, seconds)):
            self.check_cancelled()

    def remaining(self) -> float | None:
        """Seconds left before the timeout, or None without a timeout. May be negative."""
        return None if self.deadline is None else self.deadline - self.clock()
