"""The success envelope of every API response: ``{code, message, data}`` (spec 000 §4.2.1)."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response

_NO_DATA = object()


def ok(data: Any = _NO_DATA, *, message: str = "success", status: int = 200, **extra: Any) -> Response:
    """Wrap ``data``; omit the ``data`` key where the spec shows none (deletes). ``extra`` keys sit beside it."""
    body: dict[str, Any] = {"code": status, "message": message}
    if data is not _NO_DATA:
        body["data"] = data
    body.update(extra)
    return Response(body, status=status)


def created(data: Any, *, message: str) -> Response:
    return ok(data, message=message, status=201)
