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
# Parent of every execution logger: records propagate here, so an application's logging configuration
# also sees them (filter or route by this name).
TASK_LOGGER_NAME = "scheduler_sdk.task"

_logger_ids = itertools.count()


class ExecutionCancelled(Exception):
    """Raised by :meth:`ExecutionContext.check_cancelled` once the execution was stopped or timed out."""


class LogTail(logging.Handler):
    """Keeps the last ``max_bytes`` (UTF-8) of formatted records, marking what was dropped.

    The tail is kept rather than the head because the end of a log usually explains the outcome.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_LOG_BYTES) -> None:
        super().__init__()
        self.max_bytes = max_bytes
        self._lines: deque[str] = deque()
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
            self._lines.append(line)
            self._size += size
            while self._size > self.max_bytes and len(self._lines) > 1:
                dropped = self._lines.popleft()
                self._size -= len(dropped.encode()) + 1
                self._dropped += len(dropped.encode()) + 1

    def text(self) -> str:
        """The captured log, preceded by a truncation marker when earlier output was dropped."""
        with self.lock:
            body = "\n".join(self._lines)
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
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger(TASK_LOGGER_NAME), repr=False)
    cancelled: threading.Event = field(default_factory=threading.Event, repr=False)
    deadline: float | None = field(default=None, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

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
