"""Page/page_size paging (spec 000 §4.2.3): page from 1, page_size default 20, capped at 100. Spec 004's
examples write ``limit=10``: it is read as ``page_size`` (both at once must agree)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# Offsets beyond this are refused before they reach the database (OFFSET overflow, pointless scans).
MAX_PAGE = 1_000_000
# A list counts its matches exactly up to this many rows past the page; beyond, ``total`` is a lower bound
# (``total_is_exact`` false). An exact COUNT(*) of a million rows took 0.4-1.6 s, longer than the page itself.
COUNT_AHEAD = 10_000


@dataclass(frozen=True)
class PageRequest:
    page: int
    page_size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


def _positive_int(params, name: str, default: int, maximum: int | None) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValidationError({name: [f"must be a positive integer, got {raw[:40]!r}"]}, code="invalid") from None
    if value < 1:
        raise ValidationError({name: ["must be 1 or greater"]}, code="min_value")
    if maximum is not None and value > maximum:
        if name in ("page_size", "limit"):
            return maximum
        raise ValidationError({name: [f"must be at most {maximum}"]}, code="max_value")
    return value


def parse_page_request(params) -> PageRequest:
    page_size = _positive_int(params, "page_size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    if params.get("limit") not in (None, ""):
        limit = _positive_int(params, "limit", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        if params.get("page_size") not in (None, "") and limit != page_size:
            raise ValidationError({"limit": ["is another name for page_size: give one of them"]}, code="invalid")
        page_size = limit
    return PageRequest(page=_positive_int(params, "page", 1, MAX_PAGE), page_size=page_size)


@dataclass(frozen=True)
class Page:
    items: list[Any]
    total: int
    page: int
    page_size: int
    total_is_exact: bool = True

    @property
    def total_pages(self) -> int:
        return math.ceil(self.total / self.page_size) if self.total else 0

    def meta(self) -> dict[str, int | bool]:
        return {"total": self.total, "page": self.page, "page_size": self.page_size, "total_pages": self.total_pages,
                "total_is_exact": self.total_is_exact}


def paginate(queryset: QuerySet, request: PageRequest) -> Page:
    items = list(queryset[request.offset : request.offset + request.page_size])
    return counted_page(items, queryset, request)


def counted_page(items: list[Any], queryset: QuerySet, request: PageRequest) -> Page:
    """The page of ``items`` (those of ``queryset`` at ``request``), its total counted up to COUNT_AHEAD rows
    past it."""
    total, exact = bounded_count(queryset, up_to=request.offset + COUNT_AHEAD)
    if items:  # rows added between the two reads: the page itself shows at least this many
        total = max(total, request.offset + len(items))
    return Page(items=items, total=total, page=request.page, page_size=request.page_size, total_is_exact=exact)


def bounded_count(queryset: QuerySet, *, up_to: int) -> tuple[int, bool]:
    """(count, exact): counts at most ``up_to`` + 1 rows, so the cost follows the page, not the table. Only the
    ids are counted: a list's per-row figures (the console's subqueries) would otherwise be computed for every
    row counted (58 ms over 10,000 tasks without any history)."""
    seen = queryset.order_by().values("pk")[: up_to + 1].count()
    return (seen, True) if seen <= up_to else (up_to, False)
