"""Everything a newcomer needs in one process tree: web server, one scheduler node, the demo executor."""

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connection

from accounts.choices import Role
from accounts.models import ApiKey
from accounts.services import api_key_create
from alerts.models import Channel
from alerts.services import channel_save
from executors.models import Executor
from scheduler_sdk.credentials import SecretFile, default_secret_path
from scheduling.database_wait import until_database_answers

STOP_GRACE_SECONDS = 10
DEMO_INSTANCE_ID = "quickstart-demo-executor"


class Command(BaseCommand):
    help = "Migrate, then run the web server, a scheduler node and the demo executor (with demo tasks) until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--executor-port", type=int, default=9090)

    def handle(self, *args, **options):
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        if not until_database_answers(connection.ensure_connection, stop=stop, what="quickstart"):
            return
        call_command("migrate", interactive=False, verbosity=0)
        self._ensure_admin_user()
        self._ensure_admin_api_key()
        self._ensure_log_channel()
        base = f"http://{options['host']}:{options['port']}"
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        commands = {
            "web": [*manage, "runserver", f"{options['host']}:{options['port']}", "--noreload"],
            "scheduler": [*manage, "runscheduler", "--instance-id", "quickstart-scheduler"],  # listens on no port
            "executor": [sys.executable, "-m", "scheduler_sdk.demo", "--scheduler", base,
                         "--port", str(options["executor_port"]), "--instance-id", DEMO_INSTANCE_ID,
                         "--seed-tasks"],
        }
        # Executors are told to call back to this server, whatever port it was given. The demo executor
        # registers with a registration key made up for this run (unless one is set), which the web server
        # child accepts because it gets the same environment.
        # Everything runs on this machine: executors are admitted on loopback (unless networks are set).
        secret_file = str(Path(settings.BASE_DIR) / "var" / "quickstart" / "{instance_id}.json")
        env = {
            **os.environ,
            "SCHEDULER_CALLBACK_BASE_URL": os.environ.get("SCHEDULER_CALLBACK_BASE_URL", base),
            "SCHEDULER_REGISTRATION_KEY": os.environ.get("SCHEDULER_REGISTRATION_KEY") or secrets.token_urlsafe(32),
            "SCHEDULER_EXECUTOR_ALLOWED_NETWORKS": os.environ.get("SCHEDULER_EXECUTOR_ALLOWED_NETWORKS")
            or "127.0.0.0/8,::1",
            "SCHEDULER_SECRET_FILE": os.environ.get("SCHEDULER_SECRET_FILE") or secret_file,
        }
        self._hand_the_demo_executor_its_secret(env["SCHEDULER_SECRET_FILE"])
        children = {
            name: subprocess.Popen(argv, cwd=settings.BASE_DIR, env=env)  # noqa: S603 - our own commands
            for name, argv in commands.items()
        }
        self.stdout.write(self.style.SUCCESS(
            f"\nRunning. API {base}/api/v1/  docs {base}/api/docs/  admin {base}/admin/\n"
            f"Executions appear within seconds: {base}/api/v1/executions (log in to the admin first, or send "
            f"'Authorization: Bearer <API key>')\nCtrl-C stops everything.\n"
        ))
        failed = None
        while not stop.wait(0.5):
            failed = next((name for name, child in children.items() if child.poll() is not None), None)
            if failed:
                self.stderr.write(f"{failed} exited with code {children[failed].returncode}; stopping the rest")
                break
        self._stop_all(children)
        if failed:
            raise SystemExit(1)

    def _ensure_admin_user(self) -> None:
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            return
        password = secrets.token_urlsafe(12)
        users.objects.create_superuser("admin", "admin@localhost", password)
        self.stdout.write(self.style.WARNING(f"Created admin user 'admin' with password {password} (shown once)."))

    def _ensure_admin_api_key(self) -> None:
        if ApiKey.objects.filter(role=Role.ADMIN, revoked_at__isnull=True).exists():
            return
        _, raw_key = api_key_create(name="quickstart", role=Role.ADMIN, created_by="manage.py quickstart")
        self.stdout.write(self.style.WARNING(
            "Created an admin API key (shown once; send it as 'Authorization: Bearer <key>'):\n" + raw_key
        ))

    def _ensure_log_channel(self) -> None:
        """Alerts to the scheduler's own log, so a demo failure shows one here within a minute."""
        if Channel.objects.exists():
            return
        channel_save(data={"name": "quickstart log", "url": "log://"})
        self.stdout.write(self.style.WARNING(
            "Alerts go to this terminal (channel 'quickstart log', log://): the demo task 'fail' fails every "
            "minute at :45 and its alert follows its retry. Add Slack, email... under Alerts in the admin."))

    @staticmethod
    def _hand_the_demo_executor_its_secret(secret_file: str) -> None:
        """An earlier run registered the demo executor: it re-registers by proving its secret, which this
        command (an admin of this database) puts where the SDK reads it, should the file be gone."""
        executor = Executor.objects.filter(instance_id=DEMO_INSTANCE_ID).first()
        if executor is not None:
            SecretFile(default_secret_path(DEMO_INSTANCE_ID, secret_file)).save(executor.pk, executor.secret)

    @staticmethod
    def _stop_all(children: dict[str, subprocess.Popen]) -> None:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
