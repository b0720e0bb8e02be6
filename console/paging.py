"""Console lists over tables of millions of rows. Django's changelist counts every matching row for each page
(and, with ``show_full_result_count``, every row again); over a million tasks or runs that count cost more
than the page. Here, as in the API's lists (``scheduler_project.pagination``), the count stops COUNT_AHEAD
rows past the page asked for; beyond, the list says "more than N" and every page stays reachable, the next
ones from each page."""

from __future__ import annotations

from django.contrib.admin.views.main import PAGE_VAR
from django.core.paginator import Paginator
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
