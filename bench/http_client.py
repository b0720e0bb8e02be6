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
import statistics
import threading
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--posts", type=int, default=1000)
    args = parser.parse_args()
    import django

    from bench import run  # the stub and its settings (DJANGO_SETTINGS_MODULE)

    django.setup()
    bench = run.Bench(run.Sizes(), run.LOG_ROOT / "http-client")
    bench.start_stub()
    port = int(bench.stub_url.rsplit(":", 1)[1])
    try:
        cold, warm = [], []
        for round_ in range(1, args.rounds + 1):
            from executors.client import HttpLoop

            loop = HttpLoop()
            cold.append(_batch(loop, port, args.posts))
            warm.append(_batch(loop, port, args.posts))
            loop.close()
            print(f"round {round_}: cold {_fmt(cold[-1])}; warm {_fmt(warm[-1])}", flush=True)
        for name, rows in (("cold", cold), ("warm", warm)):
            medians = [statistics.median(column) for column in zip(*rows, strict=True)]
            print(f"{name}, median of {args.rounds}: {_fmt(medians)}; {args.posts / medians[2]:,.0f} POSTs/s")
    finally:
        bench.stub.end()
    return 0


def _batch(loop, port: int, posts: int) -> tuple[float, float, float]:
    from yarl import URL

    from executors.client import Prepared

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


if __name__ == "__main__":
    raise SystemExit(main())
