"""List filters for big tables: a typed value instead of a dropdown of every row, and recent time windows."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.http import QueryDict

from core.clock import utc_now


class InputFilter(admin.SimpleListFilter):
    """A text box in the filter sidebar. Subclasses set ``parameter_name``, ``title`` and ``queryset``.

    Django renders a SimpleListFilter only when it has choices, so ``lookups`` returns one placeholder.
    """

    template = "admin/console/input_filter.html"
    placeholder = ""

    def lookups(self, request, model_admin):
        return [("", "")]

    def choices(self, changelist):
        others = QueryDict(changelist.get_query_string(remove=[self.parameter_name]).lstrip("?"))
        yield {
            "parameter_name": self.parameter_name,
            "value": self.value() or "",
            "placeholder": self.placeholder,
            "hidden": [(name, value) for name, values in others.lists() for value in values],
            "clear_query_string": changelist.get_query_string(remove=[self.parameter_name]),
        }

    def get_facet_counts(self, pk_attname, filtered_qs):
        return {}


class RecentFilter(admin.SimpleListFilter):
    """Rows whose ``field_name`` falls within the last hour, day, week or month."""

    parameter_name = "when"
    title = "time"
    field_name = "scheduled_time"
    WINDOWS = {"1h": ("Last hour", timedelta(hours=1)), "24h": ("Last 24 hours", timedelta(hours=24)),
               "7d": ("Last 7 days", timedelta(days=7)), "30d": ("Last 30 days", timedelta(days=30))}

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in self.WINDOWS.items()]

    def queryset(self, request, queryset):
        window = self.WINDOWS.get(self.value() or "")
        if window is None:
            return queryset
        return queryset.filter(**{f"{self.field_name}__gte": utc_now() - window[1]})
