"""A test executor: ``scheduler_sdk.Executor`` with handlers echo, fail and sleep, journalling what it sees.

    python -m tests.e2e.journal_executor --scheduler URL --instance-id ID --journal PATH

The journal is JSON lines, one event each: ``execute`` (every POST /execute, before the SDK answers) and
``execute_reply``, ``stop`` (every POST /stop), ``start`` / ``end`` (a handler ran; ``end`` has its
outcome) and ``cancelled`` (a handler saw the cancellation). Tests read it to check what really reached the
executor.

Task names route by their part before the first dot: tasks "sleep.skip" and "sleep.stop" both run the sleep
handler. A dispatch whose parameters say ``"ignore_timeout": true`` runs without the SDK's own deadline, the way a
hung executor would behave, so the scheduler's timeout sweeper is what ends it.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from scheduler_sdk import ExecutionCancelled, ExecutionContext, Executor
from scheduler_sdk._http import Reply


class JournalExecutor(Executor):
    def __init__(self, *args: Any, journal: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._journal = open(journal, "a")  # noqa: SIM115 - lives as long as the process
        self._journal_lock = threading.Lock()
        self.add_handler("echo", self._echo)
        self.add_handler("fail", self._fail)
        self.add_handler("sleep", self._sleep)

    def record(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "t": time.time(), **fields}, default=str)
        with self._journal_lock:
            self._journal.write(line + "\n")
            self._journal.flush()

    # -- HTTP endpoints -------------------------------------------------------------------------------

    def http_execute(self, body: Any) -> Reply:
        execution_id = None
        if isinstance(body, dict):
            execution_id = str(body.get("execution_id"))
            self.record("execute", execution_id=execution_id, task_id=body.get("task_id"),
                        task_name=body.get("task_name"), scheduled_time=body.get("scheduled_time"),
                        retry_count=body.get("retry_count"), timeout_seconds=body.get("timeout_seconds"),
                        shard_index=body.get("shard_index"))
            parameters = body.get("parameters")
            if isinstance(parameters, dict) and parameters.get("ignore_timeout"):
                body = {**body, "timeout_seconds": None}
            task_name = body.get("task_name")
            if isinstance(task_name, str) and "." in task_name:  # "sleep.skip" runs the sleep handler
                body = {**body, "task_name": task_name.split(".", 1)[0]}
        reply = super().http_execute(body)
        self.record("execute_reply", execution_id=execution_id, status=reply.status)
        return reply

    def http_stop(self, body: Any) -> Reply:
        execution_id = str(body.get("execution_id")) if isinstance(body, dict) else None
        reply = super().http_stop(body)
        self.record("stop", execution_id=execution_id, status=reply.status, body=reply.body)
        return reply

    # -- handlers -------------------------------------------------------------------------------------

    def _run(self, ctx: ExecutionContext, work: Any) -> Any:
        self.record("start", execution_id=ctx.execution_id, task_name=ctx.task_name, retry_count=ctx.retry_count,
                    shard_index=ctx.shard_index, shard_total=ctx.shard_total)
        try:
            result = work(ctx)
        except ExecutionCancelled:
            self.record("cancelled", execution_id=ctx.execution_id)
            self.record("end", execution_id=ctx.execution_id, outcome="cancelled")
            raise
        except Exception as exc:
            self.record("end", execution_id=ctx.execution_id, outcome="failed", error=str(exc))
            raise
        self.record("end", execution_id=ctx.execution_id, outcome="success")
        return result

    def _echo(self, ctx: ExecutionContext) -> Any:
        return self._run(ctx, lambda c: {"echo": dict(c.parameters), "retry_count": c.retry_count})

    def _fail(self, ctx: ExecutionContext) -> Any:
        def fail(c: ExecutionContext) -> None:
            raise RuntimeError(str(c.parameters.get("message", "failing on purpose")))

        return self._run(ctx, fail)

    def _sleep(self, ctx: ExecutionContext) -> Any:
        def sleep(c: ExecutionContext) -> dict[str, float]:
            seconds = float(c.parameters.get("seconds", 1))
            end = time.monotonic() + seconds
            while (left := end - time.monotonic()) > 0:
                c.sleep(min(0.05, left))  # raises ExecutionCancelled on /stop or the SDK's deadline
            return {"slept": seconds}

        return self._run(ctx, sleep)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheduler", required=True)
    parser.add_argument("--instance-id", required=True)
    parser.add_argument("--name", default="journal-executor")
    parser.add_argument("--journal", required=True, type=Path)
    parser.add_argument("--max-workers", type=int, default=8)
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    executor = JournalExecutor(
        args.name, args.instance_id, args.scheduler, port=args.port, max_workers=args.max_workers, journal=args.journal,
        callback_retry=(0.1, 1.0), heartbeat_interval=2.0, stop_grace=2.0,
        outbox_path=args.journal.with_suffix(".outbox.json"),  # results survive a restart (SIGKILL included)
    )
    executor.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
