"""New rows written in one multi-row INSERT per batch, without the ORM's per-value SQL compilation.

``bulk_create`` compiles a placeholder and prepares each value through several layers per field per row:
at 1,500 fires/s that was a fifth of the leader's loop thread (py-spy, bench ramp), more than the INSERT
itself. The values here go through the same field conversions (``pre_save``, ``get_db_prep_save``), so what
is stored is what ``bulk_create`` stores; the SQL is built once per batch size, and a value repeated in a
column is converted once.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connections, router
from django.db.models import Model


def insert_new(objs: Sequence[Model]) -> None:
    """INSERT ``objs`` (instances of one model, their primary keys already set, e.g. by a default), as
    ``Model.objects.bulk_create(objs)`` would: no signals, database errors (IntegrityError) as the ORM
    raises them. The instances are marked saved."""
    if not objs:
        return
    model = type(objs[0])
    alias = router.db_for_write(model)
    connection = connections[alias]
    fields = list(model._meta.local_concrete_fields)
    ops = connection.ops
    table = ops.quote_name(model._meta.db_table)
    columns = ", ".join(ops.quote_name(field.column) for field in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    size = max(1, ops.bulk_batch_size(fields, objs))
    prepared = _Prepared(connection)
    with connection.cursor() as cursor:
        for first in range(0, len(objs), size):
            batch = objs[first:first + size]
            params = [prepared(index, field, field.pre_save(obj, True)) for obj in batch
                      for index, field in enumerate(fields)]
            cursor.execute(f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * len(batch))}",  # noqa: S608
                           params)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = alias


class _Prepared:
    """``field.get_db_prep_save(value, connection)``, computed once per (column, type, value) of a batch: the
    runs of one fire share most of their values (status, trigger, times, empty logs, NULLs), and the
    conversion is a pure function of them. Unhashable values (JSON objects) are converted each time."""

    def __init__(self, connection) -> None:
        self.connection = connection
        self.memo: dict[tuple, object] = {}

    def __call__(self, index: int, field, value):
        try:
            key = (index, type(value), value)
            return self.memo[key]
        except KeyError:
            prepared = self.memo[key] = field.get_db_prep_save(value, self.connection)
            return prepared
        except TypeError:  # unhashable
            return field.get_db_prep_save(value, self.connection)
