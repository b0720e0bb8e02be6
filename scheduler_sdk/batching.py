"""Cutting a sequence into requests: at most so many items and so many bytes each (the results an executor
reports, the runs the scheduler dispatches)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")


def batches(items: Iterable[Item], *, max_items: int, max_bytes: int,
            size_of: Callable[[Item], int]) -> Iterator[list[Item]]:
    """``items`` in order, in batches of at most ``max_items`` and ``max_bytes`` (an item larger than that
    goes alone)."""
    batch: list[Item] = []
    size = 0
    for item in items:
        item_size = size_of(item)
        if batch and (len(batch) >= max_items or size + item_size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item_size
    if batch:
        yield batch
