import os
import signal
import socket
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from monitoring.prometheus import start_metrics_server
from scheduler_project.config import tunable
from scheduling.engine import SchedulerNode
from scheduling.leader import lock_for_database


class Command(BaseCommand):
    help = "Run a scheduler node: it competes for leadership and, while leading, fires and dispatches tasks."

    def add_arguments(self, parser):
        hostname = socket.gethostname()
        default_id = os.environ.get("SCHEDULER_INSTANCE_ID", f"{hostname}-{os.getpid()}")
        parser.add_argument("--instance-id", default=default_id)
        parser.add_argument("--host", default=os.environ.get("SCHEDULER_HOST", hostname))
        port = os.environ.get("SCHEDULER_PORT")
        parser.add_argument("--port", type=int, default=int(port) if port else None,
                            help="The port to report in /scheduler/status (default: the metrics port, else none).")
        parser.add_argument("--once", action="store_true", help="Run a single tick and exit.")
        parser.add_argument("--metrics-port", type=int, default=int(os.environ.get("SCHEDULER_METRICS_PORT", "0")),
                            help="Serve this node's Prometheus /metrics on this port (0: off).")
        parser.add_argument("--metrics-addr", default=os.environ.get("SCHEDULER_METRICS_ADDR", "127.0.0.1"))

    def handle(self, *args, **options):
        lock = lock_for_database(
            settings.DATABASES["default"], tunable("LOCK_NAME"), tunable("LOCK_IDLE_TIMEOUT_SECONDS")
        )
        port = options["port"] or options["metrics_port"] or None  # a node listens on nothing but its metrics
        node = SchedulerNode(instance_id=options["instance_id"], host=options["host"], port=port, lock=lock)
        if options["metrics_port"]:
            start_metrics_server(options["metrics_port"], options["metrics_addr"], include_database=True)
        if options["once"]:
            node.register(node.clock())
            node.tick(node.clock())
            node.shutdown()
            return
        stop = threading.Event()

        def request_stop(signum, frame):
            # Not stop.set() here: the handler runs in the main thread, possibly while that thread is inside
            # stop.wait() holding the event's non-reentrant internal lock, and set() would then wait for
            # it forever. Another thread just waits its turn.
            threading.Thread(target=stop.set, name="stop-request", daemon=True).start()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        self.stdout.write(f"scheduler {node.instance_id} starting (lock {lock.name})")
        node.run(stop)
