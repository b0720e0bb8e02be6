"""Raw limits of this machine, measured in the same run as the workloads they bound."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

REPO = Path(__file__).resolve().parent.parent
SELFTEST = {"system": "selftest", "job": "probe", "scheduled": 0.0}
WRK_POST = """wrk.method = "POST"
wrk.body = '{"system": "selftest", "job": "probe", "scheduled": 0}'
wrk.headers["Content-Type"] = "application/json"
"""


def session_post_rate(url: str, seconds: float) -> float:
    """Sequential POSTs on one pooled requests.Session (what one dispatch thread can do at best)."""
    session = requests.Session()
    session.post(url, json=SELFTEST, timeout=5)
    done = 0
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        session.post(url, json=SELFTEST, timeout=5)
        done += 1
    return done / (time.perf_counter() - began)


def stub_capacity(url: str, seconds: float) -> float | None:
    """The stub alone under wrk (32 connections): it must sit far above any rate a system reaches."""
    script = REPO / "var" / "bench-run" / "post.lua"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(WRK_POST)
    output = run_wrk(["-t2", "-c32", f"-d{max(1, int(seconds))}s", "-s", str(script), url])
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    return float(match.group(1)) if match else None


def run_wrk(args: list[str]) -> str:
    try:
        result = subprocess.run(["wrk", *args], capture_output=True, text=True, timeout=600,  # noqa: S603, S607
                                check=False)
    except FileNotFoundError:
        return ""
    return result.stdout


def mariadb_insert_commit_rate(seconds: float) -> float:
    """Single-row INSERT + COMMIT on one mysqlclient connection, into a scratch table of the bench database
    (the one ``DATABASE_URL`` names: bench.run sets it before the limits run)."""
    import MySQLdb

    database = urlsplit(os.environ["DATABASE_URL"]).path.lstrip("/")
    conn = MySQLdb.connect(host="127.0.0.1", port=3306, user="root", password="", database=database)
    try:
        cursor = conn.cursor()
        cursor.execute("DROP TABLE IF EXISTS bench_insert_probe")
        cursor.execute("CREATE TABLE bench_insert_probe (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
                       "v VARCHAR(64) NOT NULL, t DATETIME(6) NOT NULL)")
        done = 0
        began = time.perf_counter()
        while time.perf_counter() - began < seconds:
            cursor.execute("INSERT INTO bench_insert_probe (v, t) VALUES (%s, NOW(6))", (f"row-{done}",))
            conn.commit()
            done += 1
        rate = done / (time.perf_counter() - began)
        cursor.execute("DROP TABLE bench_insert_probe")
        return rate
    finally:
        conn.close()
