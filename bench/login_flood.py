"""A flood of bad logins against gunicorn, and what it does to everyone else (issue #14, finding 3).

``--flooders`` clients (200 by default), each from its own loopback address (127.1.x.y, so the per-address
failure throttle does not stop them: the cap on password checks must), start together and each post
``--logins-each`` wrong passwords to ``/api/v1/auth/token`` one after another (``--seconds``: keep posting
that long instead), while ``--viewers`` other clients read ``GET /api/v1/tasks`` with an API key one request
after another until the flood is over. Prints the viewers' latency before and during the flood and what the
logins got. Target: the viewers' p99 under 1 s during a flood of 200 concurrent logins.

    .venv/bin/python -m bench.login_flood                       # the shipped cap
    .venv/bin/python -m bench.login_flood --concurrency 1000    # in effect no cap, to compare

Uses its own MariaDB database (``sched_login_flood``) unless ``--database-url`` names another. Heavy: 2 cores stay busy
for the whole run; don't run it while others measure.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time
from collections import Counter
from pathlib import Path

from bench.ours import GunicornWeb, prepare_database
from tests.processes import Processes, free_port, wait_for

REPO = Path(__file__).resolve().parent.parent
USERNAME, PASSWORD = "flood-target", "the-right-password-42"


def prepare(database_url: str) -> str:
    """An empty, migrated database with the user the flood guesses at and a viewer key; returns the key."""
    prepare_database(database_url)
    from django.contrib.auth import get_user_model

    from accounts.services import api_key_create

    get_user_model().objects.create_user(USERNAME, password=PASSWORD)
    return api_key_create(name="login flood viewer", role="viewer")[1]


def request(port: int, method: str, path: str, *, body: dict | None = None, headers: dict | None = None,
            source: str = "127.0.0.1", timeout: float = 60) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        payload = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=payload,
                           headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0
    finally:
        connection.close()


def view(port: int, key: str, over: threading.Event, latencies: list[float]) -> None:
    while not over.is_set():
        began = time.perf_counter()
        request(port, "GET", "/api/v1/tasks?page_size=20", headers={"Authorization": f"Bearer {key}"})
        latencies.append(time.perf_counter() - began)


def flood(port: int, source: str, logins: int, until: float, start: threading.Barrier, outcomes: Counter,
          lock: threading.Lock) -> None:
    start.wait()
    sent = 0
    while sent < logins or time.monotonic() < until:
        sent += 1
        status = request(port, "POST", "/api/v1/auth/token", body={"username": USERNAME, "password": "wrong"},
                         source=source)
        with lock:
            outcomes[status] += 1


def percentiles(latencies: list[float]) -> dict[str, float | int]:
    if not latencies:
        return {"n": 0}
    ordered = sorted(latencies)
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered) * 1000, 1),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1)}


def measure(port: int, key: str, viewers: int, flooders: int, logins_each: int, seconds: float) -> dict:
    """The viewers' latencies while ``flooders`` clients send their logins (without any: for ``seconds``)."""
    began = time.monotonic()
    over, lock, start = threading.Event(), threading.Lock(), threading.Barrier(flooders + 1)
    latencies: list[float] = []
    outcomes: Counter = Counter()
    viewing = [threading.Thread(target=view, args=(port, key, over, latencies)) for _ in range(viewers)]
    flooding = [threading.Thread(target=flood, args=(port, f"127.1.{n // 250}.{n % 250 + 1}", logins_each,
                                                     began + seconds, start, outcomes, lock))
                for n in range(flooders)]
    for thread in viewing + flooding:
        thread.start()
    start.wait()
    for thread in flooding:
        thread.join()
    if not flooders:
        time.sleep(seconds)
    over.set()
    for thread in viewing:
        thread.join()
    return {"seconds": round(time.monotonic() - began, 2), "viewers": percentiles(latencies),
            "logins": dict(sorted(outcomes.items()))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="mysql://root@127.0.0.1:3306/sched_login_flood")
    parser.add_argument("--flooders", type=int, default=200)
    parser.add_argument("--viewers", type=int, default=4)
    parser.add_argument("--logins-each", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=0, help="keep flooding this long (default: one round)")
    parser.add_argument("--concurrency", help="PASSWORD_CHECK_CONCURRENCY for the server (default: the setting's)")
    parser.add_argument("--wait", help="PASSWORD_CHECK_WAIT_SECONDS for the server (default: the setting's)")
    args = parser.parse_args()

    key = prepare(args.database_url)
    env = {"DEBUG": "0", "SECRET_KEY": "bench-" + "x" * 50, "ALLOWED_HOSTS": "127.0.0.1",
           "SECURE_SSL_REDIRECT": "0", "API_AUTH_FAILURE_RATE": "30/min"}
    if args.concurrency:
        env["PASSWORD_CHECK_CONCURRENCY"] = args.concurrency
    if args.wait:
        env["PASSWORD_CHECK_WAIT_SECONDS"] = args.wait
    procs = Processes(args.database_url, log_dir=REPO / "var" / "bench-login-flood", env=env)
    try:
        web = GunicornWeb(free_port(), procs.env, procs.log_dir / "web.log")
        procs.children.append(web)
        wait_for(web.ready, 60, interval=0.2, message="gunicorn to answer")
        baseline = measure(web.port, key, args.viewers, 0, 0, 3.0)
        flooded = measure(web.port, key, args.viewers, args.flooders, args.logins_each, args.seconds)
    finally:
        procs.close()
    print(json.dumps({"concurrency": args.concurrency or "default", "wait": args.wait or "default",
                      "flooders": args.flooders,
                      "baseline": baseline, "during_flood": flooded}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
