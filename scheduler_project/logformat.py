"""Structured logs: one JSON object per line (``LOG_FORMAT=json``).

Every line has ``ts`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger`` and ``message``; fields
passed with ``extra=`` (the engine passes ``execution_id`` and ``task_id``) follow as keys of their own, and
a logged exception adds ``exception`` (the formatted traceback). Values JSON cannot encode are written as
their ``str()``. Newlines inside values are escaped, so a traceback never splits a record across lines.
Extra values under secret-looking keys are masked (``scheduler_project.redaction``).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from scheduler_project.redaction import mask_secrets
from scheduler_project.text import escape_control_characters

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_CORE_KEYS = ("ts", "level", "logger", "message")
# Identifiers first, so a reader scanning lines finds them in the same place.
_LEADING_EXTRAS = ("execution_id", "task_id")


class JSONFormatter(logging.Formatter):
    """``logging.Formatter`` writing one JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # Masked: an extra named ``token`` (or a dict holding a ``password``) must not reach the log shipper.
        extras = mask_secrets({key: value for key, value in vars(record).items()
                               if key not in _RECORD_ATTRIBUTES and not key.startswith("_")})
        for key in (*[k for k in _LEADING_EXTRAS if k in extras], *sorted(set(extras) - set(_LEADING_EXTRAS))):
            # An extra named like a core key must not overwrite it.
            payload[f"extra_{key}" if key in _CORE_KEYS else key] = extras[key]
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            payload["exception"] = record.exc_text
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        try:
            return json.dumps(payload, ensure_ascii=False, default=str)
        except ValueError:  # e.g. a circular structure passed in extra: keep the line, flatten the values
            return json.dumps({key: value if isinstance(value, str) else repr(value)
                               for key, value in payload.items()}, ensure_ascii=False)


def _timestamp(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class PlainFormatter(logging.Formatter):
    """The plain format, one record per line as far as the message goes: control characters in it (a newline
    in a name someone registered) are escaped, so nobody can forge a log line. Tracebacks keep their lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = escape_control_characters(record.message)
        return super().formatMessage(record)
