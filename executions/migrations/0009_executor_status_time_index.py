"""(executor, status) becomes (executor, status, scheduled_time): the console's executors page reads each
executor's last 24 h by status (failures, and runs per hour from the index alone) on this index, instead of
every run the executor ever had. Status changes rewrote the old index already; the time never changes.

Measured with bench/executors_overview.py (MariaDB 10.11, 500 executors, runs over 7 days, a page of 50
executors): at 250,000 runs the runs-per-hour query read every run of those executors through (executor,
status) and the row behind each, 66 ms; on this index it reads the last day's entries only, 14 ms (39 ms at
1,000,000 runs, the whole page 145 ms on a loaded 2-core machine).

The new index is created before the old one is dropped: MariaDB refuses to drop the only index that serves the
executor foreign key."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('executions', '0008_execution_leases'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='taskexecution',
            index=models.Index(fields=['executor', 'status', 'scheduled_time'], name='idx_executor_status_time'),
        ),
        migrations.RemoveIndex(
            model_name='taskexecution',
            name='idx_executor_status',
        ),
    ]
