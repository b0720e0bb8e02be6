"""What the fuzzer sent and got back: status codes per documented operation, for the run's summary
(conftest.py) and for the check that each operation's test had a request succeed."""

from __future__ import annotations

from collections import Counter, defaultdict

TALLY: defaultdict[str, Counter] = defaultdict(Counter)
# Requests with a method the operation does not have (schemathesis probes for 405): counted apart.
OTHER_METHODS: Counter = Counter()
_current: Counter = Counter()


def record(operation: str, method: str, status: int) -> None:
    if operation.split(" ", 1)[0] != method.upper():
        OTHER_METHODS[status] += 1
        return
    TALLY[operation][status] += 1
    _current[status] += 1


def start_operation() -> None:
    _current.clear()


def current_statuses() -> Counter:
    """Statuses of the operation's own requests since start_operation()."""
    return Counter(_current)
