from django.contrib import admin

from loadbalance.models import LoadBalanceState


@admin.register(LoadBalanceState)
class LoadBalanceStateAdmin(admin.ModelAdmin):
    list_display = ["task", "last_executor", "sticky_executor", "round_robin_index", "updated_at"]
    list_select_related = ["task", "last_executor", "sticky_executor"]
    raw_id_fields = ["task", "last_executor", "sticky_executor"]
    search_fields = ["task__name"]
