"""gunicorn configuration of a web node, as `manage.py serve` starts it (README "Deploying").

Every value can be changed from the environment without editing this file:

    WEB_BIND          127.0.0.1:8000      address:port to listen on (`manage.py serve --bind` overrides it)
    WEB_CONCURRENCY   2 x CPUs + 1        worker processes
    WEB_THREADS       4                   threads per worker (gthread): requests waiting on the database
    WEB_TIMEOUT       30                  seconds a worker may stay silent before it is killed and replaced
    WEB_GRACEFUL_TIMEOUT 30               seconds in-flight requests get on SIGTERM / SIGHUP
    LOG_FORMAT=json                       JSON lines for the access and error logs, as the application's
    PROMETHEUS_MULTIPROC_DIR              where workers share /metrics values (default: a fresh temporary
                                          directory per start, removed at exit)

Signals to the master: SIGHUP starts new workers (re-reading this file and the code) and stops the old
ones gracefully, the listening socket stays open, so requests keep being served; SIGTERM stops gracefully.
"""

import os
import shutil
import tempfile
from pathlib import Path


def _int(name, default):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    value = int(raw)  # a typo stops the start with gunicorn's error naming this file
    if value < 1:
        raise ValueError(f"{name}={raw} must be at least 1")
    return value


_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

wsgi_app = "scheduler_project.wsgi:application"
bind = [os.environ.get("WEB_BIND") or "127.0.0.1:8000"]
workers = _int("WEB_CONCURRENCY", 2 * _CPUS + 1)
threads = _int("WEB_THREADS", 4)
worker_class = "gthread"
timeout = _int("WEB_TIMEOUT", 30)
graceful_timeout = _int("WEB_GRACEFUL_TIMEOUT", 30)
keepalive = 5  # seconds an idle keep-alive connection from a proxy or an executor stays open
# Not preloaded: each worker imports the application itself, so SIGHUP picks up new code.
preload_app = False
# gunicorn's control socket (gunicornc) sits at one path per user: several nodes on a host would share it.
control_socket_disable = True
accesslog = "-"
errorlog = "-"
if os.environ.get("LOG_FORMAT", "plain").strip().lower() == "json":
    logger_class = "scheduler_project.access_log.JSONLogger"

# /metrics merges every worker's values from files in this directory (prometheus_client multiprocess
# mode). It must be empty at each start: an earlier run's counters would otherwise be added in.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Set in the master's environment before any worker starts; kept across SIGHUP reloads (this file is
    # read again, the variable is then already set).
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="scheduler-metrics-")
    os.environ["SCHEDULER_OWN_METRICS_DIR"] = os.environ["PROMETHEUS_MULTIPROC_DIR"]


def on_starting(server):
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if os.environ.get("SCHEDULER_OWN_METRICS_DIR"):
        shutil.rmtree(os.environ["SCHEDULER_OWN_METRICS_DIR"], ignore_errors=True)
