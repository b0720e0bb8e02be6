# /executions/stats without task_id reads a time window of every task (the 24-hour default window of
# executions.selectors.STATS_DEFAULT_WINDOW, or the one asked for): counts per status and duration sums over
# scheduled_time alone. This index covers that read, so no row is fetched (issue #8, workload 5).
# TaskExecution.Meta.indexes lists it too (executions/models.py).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('executions', '0004_history_read_indexes'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='taskexecution',
            index=models.Index(fields=['scheduled_time', 'status', 'duration_ms'], name='idx_exec_time_cover'),
        ),
    ]
