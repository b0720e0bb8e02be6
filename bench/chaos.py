"""Chaos run on demand: a three-node cluster under random leader SIGKILLs and SIGSTOPs, then an audit.

    DATABASE_URL=mysql://root@127.0.0.1:3306/scheduler_chaos .venv/bin/python bench/chaos.py --minutes 10
    ... bench/chaos.py --minutes 10 --defaults --gap 15 30 --freeze 1 15   # at the README's defaults

The same run as tests/chaos/test_chaos.py (which does 2 minutes in the normal suite), for longer: see
tests/chaos/harness.py for the workload, the disruptions and what the audit checks. Creates (if needed),
migrates and EMPTIES the database named in DATABASE_URL (it is the run's own). Prints each disruption as it
happens and the report at the end; exits 1 if an invariant broke. Child logs go to var/chaos-logs/.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_project.settings")

from bench.failover import prepare_django  # noqa: E402 - needs the repository on sys.path
from tests.processes import Processes  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10, help="length of the storm (default 10)")
    parser.add_argument("--seed", type=int, help="seeds the workload and the disruptions (default: random)")
    parser.add_argument("--gap", type=float, nargs=2, default=(5.0, 15.0), metavar=("MIN", "MAX"),
                        help="seconds between disruptions (default 5 15: about 45 in 10 minutes)")
    parser.add_argument("--freeze", type=float, nargs=2, default=(1.0, 9.0), metavar=("MIN", "MAX"),
                        help="seconds a SIGSTOPped leader stays frozen (lock idle timeout is 5 s; 10 s at --defaults)")
    parser.add_argument("--defaults", action="store_true",
                        help="run the cluster at the README's defaults, not the tests' fast tunables")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL")
    if not url or not url.startswith("mysql"):
        parser.error("set DATABASE_URL to a MariaDB/MySQL database (e.g. mysql://root@127.0.0.1:3306/scheduler_chaos)")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)

    from tests.chaos.harness import run_chaos

    prepare_django(url)
    procs = Processes(url, log_dir=REPO / "var" / "chaos-logs", lock_prefix="sched_chaos")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # leave through the finally: end every child
    try:
        result = run_chaos(procs, seconds=args.minutes * 60, seed=seed, gap=tuple(args.gap),
                           freeze=tuple(args.freeze), defaults=args.defaults, say=lambda line: print(line, flush=True))
        report = result.report()
        (procs.log_dir / "report.txt").write_text(report + "\n")
        print("\n" + report)
        return 1 if result.problems else 0
    except Exception:
        print("\n" + procs.tails(20), file=sys.stderr)
        raise
    finally:
        procs.close()


if __name__ == "__main__":
    raise SystemExit(main())
