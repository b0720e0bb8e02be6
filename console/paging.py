"""Console lists over tables of millions of rows. Django's changelist counts every matching row for each page
(and, with ``show_full_result_count``, every row again); over a million tasks or runs that count cost more
than the page. Here, as in the API's lists (``scheduler_project.pagination``), the count stops COUNT_AHEAD
rows past the page asked for; beyond, the list says "more than N" and every page stays reachable, the next
ones from each page."""

from __future__ import annotations

from django.contrib.admin.views.main import PAGE_VAR
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property

from scheduler_project import pagination


class BoundedCountPaginator(Paginator):
    def __init__(self, object_list, per_page, orphans=0, allow_empty_first_page=True, *, page_asked: int = 1):
        super().__init__(object_list, per_page, orphans, allow_empty_first_page)
        self.page_asked = page_asked
        self.count_is_exact = True

    @cached_property
    def count(self) -> int:
        up_to = (self.page_asked - 1) * self.per_page + pagination.COUNT_AHEAD
        total, self.count_is_exact = pagination.bounded_count(self.object_list, up_to=up_to)
        return total

    def page(self, number):
        """The page's rows, their ids read first: a list's per-row subqueries (a task's last run and 24 h
        success rate) are then computed for the page alone. Over OFFSET, the database computes them for every
        row it skips (a million tasks, page 50: 227 ms for the rows, 9 ms for their ids). Not when the list is
        ordered by such a figure: the order itself needs it for every row."""
        queryset = self.object_list
        if not isinstance(queryset, QuerySet) or not _ordered_by_columns(queryset):
            return super().page(number)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        ids = list(queryset.values_list("pk", flat=True)[bottom:top])
        rows = {row.pk: row for row in queryset.order_by().filter(pk__in=ids)}
        return self._get_page([rows[pk] for pk in ids if pk in rows], number, self)


def _ordered_by_columns(queryset: QuerySet) -> bool:
    """Whether the order is plain columns (no annotation, no expression): the ids then come without the rows."""
    return all(isinstance(field, str) and field.lstrip("-") not in queryset.query.annotations
               for field in queryset.query.order_by)


class BoundedCountAdminMixin:
    """A ModelAdmin whose list counts at most COUNT_AHEAD rows past the page (templates/admin/pagination.html and
    actions.html say "more than" when the count stopped there)."""

    show_full_result_count = False

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        try:
            asked = max(1, int(request.GET.get(PAGE_VAR, 1)))
        except ValueError:  # the changelist itself answers a bad page number
            asked = 1
        return BoundedCountPaginator(queryset, per_page, orphans, allow_empty_first_page, page_asked=asked)
