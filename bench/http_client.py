"""How fast the scheduler's HTTP loop sends a burst: 1,000 POSTs to the stub executor on loopback.

    .venv/bin/python -m bench.http_client [--rounds 5] [--posts 1000]

Each round starts a fresh ``executor_http.HttpLoop`` (cold: no connection open yet) and sends the batch
twice, the second time over the connections the first left open (warm). Prints, per round, when the 100th,
half and the last answer came back, in seconds from the batch's start; the last figure is the batch's
total, whose inverse is the loop's POST rate. The stub records nothing for system ``selftest``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--posts", type=int, default=1000)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_project.settings")
    import django

    django.setup()
    from tests.processes import free_port

    port = free_port()
    stub = subprocess.Popen([sys.executable, "-m", "bench.stub", "--port", str(port)], cwd=REPO,  # noqa: S603
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_stub(port)
        cold, warm = [], []
        for round_ in range(1, args.rounds + 1):
            from scheduling.executor_http import HttpLoop

            loop = HttpLoop()
            cold.append(_batch(loop, port, args.posts))
            warm.append(_batch(loop, port, args.posts))
            loop.close()
            print(f"round {round_}: cold {_fmt(cold[-1])}; warm {_fmt(warm[-1])}", flush=True)
        for name, rows in (("cold", cold), ("warm", warm)):
            medians = [statistics.median(column) for column in zip(*rows, strict=True)]
            print(f"{name}, median of {args.rounds}: {_fmt(medians)}; {args.posts / medians[2]:,.0f} POSTs/s")
    finally:
        stub.kill()
    return 0


def _batch(loop, port: int, posts: int) -> tuple[float, float, float]:
    from yarl import URL

    from scheduling.executor_http import Prepared

    body = json.dumps({"system": "selftest", "job": "bench", "scheduled": 0}).encode()
    headers = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json", "Accept": "application/json"}
    requests = [Prepared("POST", URL(f"http://127.0.0.1:{port}/fire"), headers, body, None) for _ in range(posts)]
    answered: list[float] = []
    lock = threading.Lock()
    started = time.perf_counter()

    def record(_future) -> None:
        with lock:
            answered.append(time.perf_counter() - started)

    futures = loop.submit_many(requests, 10)
    for future in futures:
        future.add_done_callback(record)
    for future in futures:
        if future.result(30).status_code != 200:
            raise SystemExit(f"the stub answered {future.result().status_code}")
    while len(answered) < posts:  # the last callbacks may still be running
        time.sleep(0.001)
    answered.sort()
    return answered[min(99, posts - 1)], answered[posts // 2 - 1], answered[-1]


def _fmt(figures) -> str:
    first, half, last = figures
    return f"100th {first:.3f} s, half {half:.3f} s, all {last:.3f} s"


def _wait_for_stub(port: int) -> None:
    import requests

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                return
        except requests.RequestException:
            time.sleep(0.1)
    raise SystemExit("the stub did not answer")


if __name__ == "__main__":
    raise SystemExit(main())
