"""An execution's log text, capped: the tail is kept (the end of a log usually explains the outcome) behind one
marker line saying how much was dropped; capping text that already carries a marker folds the counts into a
single marker, so markers never stack. Pure: the cap is an argument."""

from __future__ import annotations

import re

_MARKER = re.compile(r"\A\[\.\.\. (\d+) earlier characters truncated \.\.\.\]\n")


def truncation_marker(dropped: int) -> str:
    return f"[... {dropped} earlier characters truncated ...]\n"


def split_marker(logs: str) -> tuple[int, str]:
    """``(characters dropped so far, the text after the marker)``; ``(0, logs)`` when there is no marker."""
    match = _MARKER.match(logs)
    if match is None:
        return 0, logs
    return int(match.group(1)), logs[match.end():]


def cap_logs(logs: str, max_chars: int) -> str:
    """``logs`` cut to at most ``max_chars`` characters, keeping the tail.

    The cut moves forward to the next line start when the kept part has one, so the first kept line is
    whole; the marker counts every character dropped, including those dropped by earlier cuts.
    """
    limit = max_chars
    if len(logs) <= limit:
        return logs
    dropped, body = split_marker(logs)
    # Room for the marker at its largest (every character of body dropped); the real one is no longer.
    keep = max(0, limit - len(truncation_marker(dropped + len(body))))
    cut = len(body) - keep
    if cut > 0 and body[cut - 1] != "\n":
        newline = body.find("\n", cut, len(body) - 1)
        if newline != -1:
            cut = newline + 1
    return truncation_marker(dropped + cut) + body[cut:]


def appended_logs(existing: str, addition: str, max_chars: int) -> str:
    """``existing`` with ``addition`` appended on a new line, capped."""
    if not addition:
        return cap_logs(existing, max_chars)
    return cap_logs(f"{existing}\n{addition}" if existing else addition, max_chars)


def is_truncated(logs: str) -> bool:
    return _MARKER.match(logs) is not None
