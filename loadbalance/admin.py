"""Load-balancing state per task, read-only: the scheduler writes it on every dispatch."""

from django.contrib import admin

from console.display import pretty_json
from loadbalance.models import LoadBalanceState


@admin.register(LoadBalanceState)
class LoadBalanceStateAdmin(admin.ModelAdmin):
    list_display = ["task", "strategy", "last_executor", "sticky_executor", "round_robin_index", "updated_at"]
    list_select_related = ["task", "last_executor", "sticky_executor"]
    search_fields = ["task__name"]
    fields = ["task", "strategy", "last_executor", "sticky_executor", "round_robin_index", "weights", "updated_at"]
    readonly_fields = ["strategy", "weights"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Strategy", ordering="task__load_balance_strategy")
    def strategy(self, obj):
        return obj.task.get_load_balance_strategy_display()

    @admin.display(description="Smooth weighted round robin: current weights")
    def weights(self, obj):
        return pretty_json(obj.current_weights)
