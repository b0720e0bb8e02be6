"""Control characters in names: refused where names are written, escaped where log lines are written.

A newline in an instance id or a task name forged whole log lines ("... refused: ok\\n2026-... INFO ...");
other control characters (escape sequences) can rewrite what a terminal shows.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def refuse_control_characters(value: str) -> None:
    """Validator of names and identifiers."""
    if isinstance(value, str) and _CONTROL.search(value):
        raise ValidationError("must not contain control characters (line breaks, tabs, escapes)",
                              code="control_characters")


def escape_control_characters(text: str) -> str:
    """``text`` on one line: control characters written as escapes (``\\n``, ``\\x1b``)."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda match: _NAMED.get(match.group(), f"\\x{ord(match.group()):02x}"
                                                 if ord(match.group()) < 0x100 else f"\\u{ord(match.group()):04x}"),
                        text)
