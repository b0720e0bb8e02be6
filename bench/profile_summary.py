"""Summarise a py-spy ``--format raw`` profile: where the samples of our code went.

    .venv/bin/python -m bench.profile_summary var/bench-run/profiles/sustained-ours-scheduler.txt [--top 25]

Prints, per function of this repository (and the DB driver / HTTP calls they lead to), the share of
samples whose stack contains it (inclusive), per thread kind (loop thread vs dispatch workers).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

OURS = re.compile(r"\((?:[\w/.-]*/)?(scheduling|executions|tasks|executors|loadbalance|accounts|scheduler_project|core|"
                  r"workflows|alerts)/")
LEAVES = ("MySQLdb", "socket", "ssl", "select", "sleep", "wait")


def summarise(path: Path, top: int) -> str:
    inclusive: dict[str, Counter] = {}
    totals: Counter = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = "dispatch" if "dispatch" in frames[0] else ("loop" if "MainThread" in frames[0] or "main" in
                                                               frames[0].lower() else frames[0][:30])
        totals[thread] += int(count)
        seen = set()
        for frame in frames[1:]:
            name = frame.split(" (")[0]
            ours = OURS.search(frame) and "site-packages" not in frame and "/lib/python" not in frame
            key = f"{name} ({frame.split('(')[-1].rstrip(')')})" if ours else None
            if key is None and any(leaf in frame for leaf in ("Connection.query", "cursors.py", "_send_output",
                                                                "readinto", "commit", "Cursor.execute")):
                key = name
            if key and key not in seen:
                seen.add(key)
                inclusive.setdefault(thread, Counter())[key] += int(count)
    lines = []
    for thread, counter in inclusive.items():
        lines.append(f"== thread {thread}: {totals[thread]} samples")
        for key, n in counter.most_common(top):
            lines.append(f"  {100 * n / totals[thread]:5.1f}%  {key}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(summarise(args.path, args.top))


if __name__ == "__main__":
    main()
