# Indexes for the history reads over a million rows (issue #8, workload 5), measured with bench/run.py on
# MariaDB 10.11 with 1,000,000 executions over 100 tasks (best of 3, query alone):
#   list by task+status, ordered by scheduled_time, page 2   67 ms  -> 0.8 ms  (task, status, scheduled_time)
#   task stats: per-day counts of one task over 90 days     944 ms  -> 14 ms   (same index, index-only)
#   executions stats of one task (counts + durations)      1063 ms  -> 9.7 ms  (task, scheduled_time, status,
#                                                                               duration_ms: index-only)
#   list by status + one-day range                         1333 ms  -> 1.5 ms  (status, scheduled_time)
# TaskExecution.Meta.indexes must list the same three indexes (executions/models.py), or makemigrations
# will propose dropping them.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('executions', '0003_retry_of_index'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='taskexecution',
            index=models.Index(fields=['task', 'status', 'scheduled_time'], name='idx_exec_task_status_time'),
        ),
        migrations.AddIndex(
            model_name='taskexecution',
            index=models.Index(fields=['task', 'scheduled_time', 'status', 'duration_ms'],
                               name='idx_exec_task_time_cover'),
        ),
        migrations.AddIndex(
            model_name='taskexecution',
            index=models.Index(fields=['status', 'scheduled_time'], name='idx_exec_status_time'),
        ),
    ]
