"""``manage.py serve``: the production start of a web node (README "Deploying").

Migrates and collects static files holding a database lock, so web nodes started together (a rolling
upgrade, a host reboot) take turns instead of racing each other's ``CREATE TABLE``; then replaces itself
with gunicorn (``exec``), configured by ``deploy/gunicorn.conf.py``, so the process a supervisor started is
gunicorn's master and receives its signals: SIGHUP reloads the workers gracefully, SIGTERM stops.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connections

from scheduler_project.config import tunable
from scheduling.leader import held, lock_for_database

GUNICORN_CONFIG = Path(settings.BASE_DIR) / "deploy" / "gunicorn.conf.py"


class Command(BaseCommand):
    help = ("Production start of a web node: migrate and collect static files (one node at a time), then run "
            "gunicorn with deploy/gunicorn.conf.py.")
    # migrate runs the system checks itself; running them twice costs a second per start.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--bind", action="append", default=[],
                            help="ADDRESS:PORT to listen on, repeatable (default: WEB_BIND or 127.0.0.1:8000).")
        parser.add_argument("--config", default=str(GUNICORN_CONFIG), help="gunicorn configuration file.")
        parser.add_argument("--no-migrate", action="store_true",
                            help="Leave migrations to a deploy step (collect static files only).")
        parser.add_argument("--prepare-only", action="store_true",
                            help="Migrate and collect static files, then exit without starting gunicorn.")
        parser.add_argument("--lock-wait", type=float, default=float(os.environ.get("SERVE_LOCK_WAIT", "900")),
                            help="Seconds to wait for another node's migration before giving up (default 900).")

    def handle(self, *args, **options):
        self.prepare(migrate=not options["no_migrate"], lock_wait=options["lock_wait"])
        if options["prepare_only"]:
            return
        argv = gunicorn_argv(options["config"], options["bind"])
        self.stdout.write("starting " + " ".join(argv[1:]))
        self.stdout.flush()
        connections.close_all()  # nothing of this process survives the exec but its environment
        os.execv(argv[0], argv)  # noqa: S606 - our own interpreter and arguments, no shell

    def prepare(self, *, migrate: bool, lock_wait: float) -> None:
        """Step: migrations and collectstatic under the cluster's migration lock."""
        lock = lock_for_database(settings.DATABASES["default"], f"{tunable('LOCK_NAME')}_migrate",
                                 int(tunable("LOCK_IDLE_TIMEOUT_SECONDS")))
        with held(lock, wait_seconds=lock_wait, on_wait=lambda: self.stdout.write(
                f"waiting for lock {lock.name}: another node is migrating", ending="\n")):
            if migrate:
                call_command("migrate", interactive=False, verbosity=1)
            call_command("collectstatic", interactive=False, verbosity=1)


def gunicorn_argv(config: str, binds: list[str]) -> list[str]:
    """The command line gunicorn is exec'd with: this interpreter, so the same virtualenv runs it."""
    return [sys.executable, "-m", "gunicorn", "--config", config,
            *[f"--bind={address}" for address in binds], "scheduler_project.wsgi:application"]
