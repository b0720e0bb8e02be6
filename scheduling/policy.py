"""Pure scheduling decisions: no Django, no clock, no I/O. Callers pass ``now`` and state in."""

from __future__ import annotations


def retry_delay_seconds(attempt: int, *, base: float, cap: float) -> float:
    """Exponential backoff before retry number ``attempt`` (1 = first retry): base, 2·base, 4·base… ≤ cap."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    return min(cap, base * (2 ** min(attempt - 1, 30)))
