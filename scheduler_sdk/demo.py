"""A runnable demo executor with a few representative handlers.

    python -m scheduler_sdk.demo --scheduler http://127.0.0.1:8000 --port 9090 [--seed-tasks]

Handlers: ``echo`` (returns its parameters), ``sleep`` (cancellable wait), ``fail`` (raises),
``http_get`` (fetches a URL with a timeout and a size cap) and ``report`` (text and number statistics).
With ``--seed-tasks`` the registration also declares cron tasks for them, so the scheduler creates them.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
import socket
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from scheduler_sdk.context import ExecutionContext
from scheduler_sdk.executor import Executor

HTTP_GET_DEFAULT_MAX_BYTES = 1024 * 1024
HTTP_GET_HARD_MAX_BYTES = 10 * 1024 * 1024
HTTP_GET_DEFAULT_TIMEOUT = 10.0
_KEPT_HEADERS = ("content-type", "content-length", "content-encoding", "etag", "last-modified", "server",
                 "location", "cache-control")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")

# Frequent enough that a newcomer sees every kind of outcome within a minute of the quick start.
SEED_TASKS: list[dict[str, Any]] = [
    {"task_name": "echo", "cron": "*/10 * * * * *", "parameters": {"hello": "world"}, "timeout": 30},
    {"task_name": "report", "cron": "30 * * * * *", "timeout": 60, "max_retry": 1,
     "parameters": {"title": "demo report", "text": "the quick brown fox jumps over the lazy dog",
                    "numbers": [3, 1, 4, 1, 5, 9, 2, 6]}},
    {"task_name": "sleep", "cron": "*/15 * * * * *", "parameters": {"seconds": 20}, "timeout": 60,
     "execution_mode": "skip"},
    {"task_name": "fail", "cron": "45 * * * * *", "parameters": {"message": "demo failure"}, "timeout": 30,
     "max_retry": 1},
]


def _number(params: dict[str, Any], name: str, default: float, *, minimum: float, maximum: float) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"parameter {name!r} must be a number")
    if not minimum <= value <= maximum:
        raise ValueError(f"parameter {name!r} must be between {minimum:g} and {maximum:g}")
    return float(value)


# -- echo / sleep / fail --------------------------------------------------------------------------------


def echo(ctx: ExecutionContext) -> dict[str, Any]:
    """Returns its parameters unchanged."""
    ctx.logger.info("echoing %d parameter(s)", len(ctx.parameters))
    return dict(ctx.parameters)


def sleep(ctx: ExecutionContext) -> dict[str, Any]:
    """Sleeps ``seconds`` (default 1, at most an hour) in small steps, stopping early when cancelled."""
    seconds = _number(ctx.parameters, "seconds", 1.0, minimum=0, maximum=3600)
    started = time.monotonic()
    next_progress = 1.0
    while (elapsed := time.monotonic() - started) < seconds:
        ctx.sleep(min(0.1, seconds - elapsed))  # raises ExecutionCancelled on /stop or timeout
        if elapsed >= next_progress:
            ctx.logger.info("slept %.1f of %.1f s", elapsed, seconds)
            next_progress += 1.0
    ctx.logger.info("done sleeping")
    return {"slept": seconds}


def fail(ctx: ExecutionContext) -> None:
    """Always raises, with the ``message`` parameter: exercises failure reporting and retries."""
    message = str(ctx.parameters.get("message", "demo failure"))
    ctx.logger.warning("about to fail on purpose")
    raise RuntimeError(message)


# -- http_get -------------------------------------------------------------------------------------------


def _checked_url(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("parameter 'url' is required")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"refusing scheme {parts.scheme or '(none)'!r}: only http and https are allowed")
    if not parts.hostname:
        raise ValueError("url has no host")
    return value


def _read_capped(ctx: ExecutionContext, response: requests.Response, max_bytes: int) -> tuple[int, str, bool]:
    """Hashes at most ``max_bytes`` of the body; returns (size read, sha256, truncated)."""
    digest, size = hashlib.sha256(), 0
    for chunk in response.iter_content(chunk_size=64 * 1024):
        ctx.check_cancelled()
        take = chunk[: max_bytes - size]
        digest.update(take)
        size += len(take)
        if size >= max_bytes:
            return size, digest.hexdigest(), True
    return size, digest.hexdigest(), False


def http_get(ctx: ExecutionContext) -> dict[str, Any]:
    """Fetches ``url`` (http/https only, no redirects followed) and describes the response.

    Parameters: ``url``; ``timeout`` seconds (default 10, also bounded by the execution's remaining
    time); ``max_bytes`` (default 1 MiB, at most 10 MiB). It fetches whatever URL it is given: deploy
    it only where the task's parameters are trusted.
    """
    url = _checked_url(ctx.parameters.get("url"))
    timeout = _number(ctx.parameters, "timeout", HTTP_GET_DEFAULT_TIMEOUT, minimum=0.1, maximum=300)
    remaining = ctx.remaining()
    if remaining is not None:
        timeout = max(0.1, min(timeout, remaining))
    max_bytes = int(_number(ctx.parameters, "max_bytes", HTTP_GET_DEFAULT_MAX_BYTES, minimum=1,
                            maximum=HTTP_GET_HARD_MAX_BYTES))
    ctx.logger.info("GET %s (timeout %.1f s, cap %d bytes)", url, timeout, max_bytes)
    started = time.monotonic()
    # Redirects are not followed: the caller vetted this URL, not wherever it points to.
    with requests.get(url, timeout=timeout, stream=True, allow_redirects=False) as response:
        size, sha256, truncated = _read_capped(ctx, response, max_bytes)
    elapsed_ms = round((time.monotonic() - started) * 1000, 1)
    ctx.logger.info("HTTP %d, %d bytes%s in %.1f ms", response.status_code, size,
                    " (truncated)" if truncated else "", elapsed_ms)
    headers = {name: response.headers[name] for name in _KEPT_HEADERS if name in response.headers}
    return {"url": url, "status_code": response.status_code, "headers": headers, "size": size,
            "truncated": truncated, "sha256": sha256, "elapsed_ms": elapsed_ms}


# -- report ---------------------------------------------------------------------------------------------


def text_summary(text: str, top: int = 5) -> dict[str, Any]:
    """Line, word and character counts plus the most frequent words (case-insensitive)."""
    words = [word.lower() for word in _WORD.findall(text)]
    counts = Counter(words)
    return {
        "lines": len(text.splitlines()),
        "words": len(words),
        "characters": len(text),
        "unique_words": len(counts),
        "average_word_length": round(sum(map(len, words)) / len(words), 2) if words else 0.0,
        "top_words": [[word, n] for word, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]],
    }


def number_summary(numbers: Sequence[float]) -> dict[str, Any]:
    """Count, sum, min, max, mean, median and population standard deviation."""
    return {
        "count": len(numbers),
        "sum": sum(numbers),
        "min": min(numbers),
        "max": max(numbers),
        "mean": statistics.fmean(numbers),
        "median": statistics.median(numbers),
        "stdev": statistics.pstdev(numbers),
    }


def _numbers_param(value: Any) -> list[float]:
    if not isinstance(value, list) or not value:
        raise ValueError("parameter 'numbers' must be a non-empty list")
    if any(isinstance(item, bool) or not isinstance(item, (int, float)) for item in value):
        raise ValueError("parameter 'numbers' must contain only numbers")
    return value


def report(ctx: ExecutionContext) -> dict[str, Any]:
    """Builds a summary report of a ``text`` and/or a list of ``numbers``, logging each step."""
    params = ctx.parameters
    if "text" not in params and "numbers" not in params:
        raise ValueError("give a 'text' and/or a list of 'numbers' to report on")
    title = str(params.get("title") or f"report for {ctx.task_name or 'demo'}")
    ctx.logger.info("building %r", title)
    report_body: dict[str, Any] = {"title": title, "generated_at": datetime.now(UTC).isoformat()}
    if "text" in params:
        if not isinstance(params["text"], str):
            raise ValueError("parameter 'text' must be a string")
        ctx.check_cancelled()
        report_body["text"] = text_summary(params["text"])
        ctx.logger.info("text: %(lines)d line(s), %(words)d word(s)", report_body["text"])
    if "numbers" in params:
        ctx.check_cancelled()
        report_body["numbers"] = number_summary(_numbers_param(params["numbers"]))
        ctx.logger.info("numbers: %(count)d value(s), mean %(mean).4g", report_body["numbers"])
    ctx.logger.info("report complete")
    return report_body


HANDLERS = {"echo": echo, "sleep": sleep, "fail": fail, "http_get": http_get, "report": report}


def build_executor(scheduler_url: str | list[str], *, seed_tasks: bool = False, **options: Any) -> Executor:
    """An Executor with the demo handlers; ``options`` are passed to :class:`Executor`."""
    options.setdefault("name", "demo-executor")
    options.setdefault("instance_id", f"{options['name']}-{socket.gethostname()}-{options.get('port', 0)}")
    executor = Executor(scheduler_url=scheduler_url, tasks=SEED_TASKS if seed_tasks else None, **options)
    for task_name, fn in HANDLERS.items():
        executor.add_handler(task_name, fn)
    return executor


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scheduler_sdk.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--scheduler", default="http://127.0.0.1:8000",
                        help="scheduler base URL; several web nodes' URLs comma-separated")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9090, help="port to bind, 0 for any (default 9090)")
    parser.add_argument("--advertise-url", help="base URL the scheduler should call (default http://host:port)")
    parser.add_argument("--name", default="demo-executor")
    parser.add_argument("--instance-id", help="unique instance id (default NAME-HOSTNAME-PORT)")
    parser.add_argument("--max-workers", type=int, default=4)
    parser.add_argument("--seed-tasks", action="store_true", help="declare demo cron tasks at registration")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options: dict[str, Any] = {"name": args.name, "host": args.host, "port": args.port,
                               "advertise_url": args.advertise_url, "max_workers": args.max_workers}
    if args.instance_id:
        options["instance_id"] = args.instance_id
    executor = build_executor(args.scheduler, seed_tasks=args.seed_tasks, **options)
    executor.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
