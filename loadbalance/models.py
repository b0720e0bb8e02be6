from django.db import models


class LoadBalanceState(models.Model):
    """Per-task strategy state, persisted so a new leader continues where the old one stopped."""

    task = models.OneToOneField(
        "tasks.Task", on_delete=models.CASCADE, primary_key=True, related_name="load_balance_state"
    )
    last_executor = models.ForeignKey(
        "executors.Executor", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    round_robin_index = models.IntegerField(default=0)
    sticky_executor = models.ForeignKey(
        "executors.Executor", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Smooth weighted round robin's running "current weight" per executor id.
    current_weights = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "load_balance_state"

    def __str__(self) -> str:
        return f"load balance state of {self.task_id}"
