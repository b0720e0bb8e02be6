"""Delete final executions older than the retention period, in batches."""

from django.conf import settings
from django.core.management.base import BaseCommand

from core.clock import utc_now
from executions.retention import purge_executions, purgeable, retention_cutoff


def _non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(value)
    return number


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Delete final executions (not pending or running) scheduled more than --days days ago, "
        "--batch-size rows per short transaction."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=_non_negative, default=None,
                            help="Retention in days (default EXECUTION_RETENTION_DAYS; 0 deletes nothing).")
        parser.add_argument("--batch-size", type=_positive, default=None,
                            help="Rows per batch (default EXECUTION_PURGE_BATCH_SIZE).")
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be deleted.")

    def handle(self, *args, days=None, batch_size=None, dry_run=False, **options):
        days = settings.EXECUTION_RETENTION_DAYS if days is None else days
        batch_size = settings.EXECUTION_PURGE_BATCH_SIZE if batch_size is None else batch_size
        cutoff = retention_cutoff(utc_now(), days)
        if cutoff is None:
            self.stdout.write("Retention is off (0 days): nothing deleted.")
            return
        when = cutoff.isoformat().replace("+00:00", "Z")
        if dry_run:
            count = purgeable(cutoff).count()
            self.stdout.write(f"Would delete {count} execution(s) scheduled before {when} (dry run).")
            return
        deleted = purge_executions(older_than=cutoff, batch_size=batch_size)
        self.stdout.write(self.style.SUCCESS(f"Deleted {deleted} execution(s) scheduled before {when}."))
