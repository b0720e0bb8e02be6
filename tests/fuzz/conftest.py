"""A summary of what the fuzzer sent and got back, printed at the end of the run."""

from __future__ import annotations

from tests.fuzz.tally import OTHER_METHODS, TALLY


def pytest_terminal_summary(terminalreporter):
    if not TALLY:
        return
    requests = sum(sum(statuses.values()) for statuses in TALLY.values()) + sum(OTHER_METHODS.values())
    terminalreporter.write_sep("-", f"API fuzzing: {len(TALLY)} operations, {requests} requests")
    for operation, statuses in sorted(TALLY.items()):
        terminalreporter.write_line(f"{operation}: {dict(sorted(statuses.items()))}")
    if OTHER_METHODS:
        terminalreporter.write_line(f"methods the schema does not list: {dict(sorted(OTHER_METHODS.items()))}")
