"""The chaos suite's executor: the journalling test executor plus misbehaviour on demand.

    python -m tests.chaos.chaos_executor --scheduler URL --instance-id ID --journal PATH

On top of tests/e2e/journal_executor.py (handlers echo, fail, sleep; ``ignore_timeout`` makes a sleep hang past
the task's timeout) it adds:

- handler ``flaky``: fails for the fraction ``fail_fraction`` of runs;
- lost results: for the fraction ``drop_callback_fraction`` of runs the result is never sent (as if the
  executor died right after the handler returned), so only the scheduler's timeout sweep can end the run;
- repeated results: for the fraction ``double_callback_fraction`` of runs the result is sent twice (as an
  executor retrying after a lost answer would), and the scheduler must apply it only once.

The fractions are read from the dispatch's parameters; which runs they hit is decided by a hash of the
execution id, so every executor agrees. Each callback attempt is journalled as a ``callback`` event with its
outcome (``delivered``, ``already_final``, ``dropped``, ``retry``), each result handed to the outbox as
``callback_queued`` (so the suite knows when none is left to send). The suite counts results applied twice from
these and, independently, from the web server's access log.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import threading
import zlib
from pathlib import Path
from typing import Any

from scheduler_sdk import ExecutionContext
from scheduler_sdk._http import Reply
from scheduler_sdk.outbox import Delivery, Report
from tests.e2e.journal_executor import JournalExecutor


def hits(execution_id: str, salt: str, fraction: float) -> bool:
    """Whether ``execution_id`` falls in the ``fraction`` of runs picked for ``salt`` (stable across processes)."""
    return (zlib.crc32(f"{salt}:{execution_id}".encode()) % 10_000) < fraction * 10_000


class ChaosExecutor(JournalExecutor):
    def __init__(self, *args: Any, batch_callbacks: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_handler("flaky", self._flaky)
        self._fates: dict[str, str] = {}  # execution id -> "drop" | "double"
        self._fates_lock = threading.Lock()
        # The SDK's outbox is the one place results leave the executor: wrap it to lose, repeat and count them.
        self._send_report = self._outbox.put
        self._deliver_report = self._outbox._deliver
        self._deliver_reports = self._outbox._deliver_batch
        self._outbox.put = self._put_report
        self._outbox._deliver = self._journalled_delivery
        self._outbox._deliver_batch = self._journalled_batch
        # One result per request keeps the web log's per-execution callback lines (the audit's second count
        # of results applied twice); batches exercise the batch endpoint.
        self._outbox.batching = batch_callbacks

    def http_execute(self, body: Any) -> Reply:
        if isinstance(body, dict) and isinstance(body.get("parameters"), dict):
            execution_id = str(body.get("execution_id"))
            parameters = body["parameters"]
            fate = None
            if hits(execution_id, "drop", float(parameters.get("drop_callback_fraction", 0))):
                fate = "drop"
            elif hits(execution_id, "double", float(parameters.get("double_callback_fraction", 0))):
                fate = "double"
            if fate:
                with self._fates_lock:
                    self._fates[execution_id] = fate
        return super().http_execute(body)

    def _put_report(self, report: Report) -> None:
        with self._fates_lock:
            fate = self._fates.pop(report.execution_id, None)
        if fate == "drop":
            self.record("callback_dropped", execution_id=report.execution_id, status=report.status)
            return
        self.record("callback_queued", execution_id=report.execution_id, status=report.status)
        self._send_report(report)
        if fate == "double":
            self.record("callback_repeated", execution_id=report.execution_id, status=report.status)
            self.record("callback_queued", execution_id=report.execution_id, status=report.status)
            self._send_report(dataclasses.replace(report, failures=0))

    def _journalled_delivery(self, report: Report) -> Delivery:
        outcome = self._deliver_report(report)
        self.record("callback", execution_id=report.execution_id, status=report.status, outcome=outcome.value)
        return outcome

    def _journalled_batch(self, reports: list[Report]) -> list[Delivery] | None:
        outcomes = self._deliver_reports(reports)
        for report, outcome in zip(reports, outcomes or (), strict=False):  # None: they go one by one
            self.record("callback", execution_id=report.execution_id, status=report.status, outcome=outcome.value)
        return outcomes

    def _flaky(self, ctx: ExecutionContext) -> Any:
        def maybe_fail(c: ExecutionContext) -> dict[str, bool]:
            if hits(c.execution_id, "fail", float(c.parameters.get("fail_fraction", 0.5))):
                raise RuntimeError("flaky handler failing on purpose")
            return {"flaky": True}

        return self._run(ctx, maybe_fail)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheduler", required=True)
    parser.add_argument("--instance-id", required=True)
    parser.add_argument("--name", default="chaos-executor")
    parser.add_argument("--journal", required=True, type=Path)
    parser.add_argument("--max-workers", type=int, default=64)
    parser.add_argument("--one-callback-per-request", action="store_true",
                        help="report each result in its own request instead of in batches")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    executor = ChaosExecutor(
        args.name, args.instance_id, args.scheduler, port=0, max_workers=args.max_workers, journal=args.journal,
        callback_retry=(0.1, 1.0), heartbeat_interval=2.0, stop_grace=1.0, stream_logs=False,
        batch_callbacks=not args.one_callback_per_request,
        outbox_path=args.journal.with_suffix(".outbox.json"),  # a restarted executor still delivers its results
    )
    executor.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
