"""OpenAPI descriptions of the envelopes, so the schema states the bodies clients really receive."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

_COMPONENTS: dict[str, serializers.Serializer] = {}


def _component(name: str, fields: dict) -> serializers.Serializer:
    if name not in _COMPONENTS:
        _COMPONENTS[name] = inline_serializer(name=name, fields=fields)
    return _COMPONENTS[name]


def _head() -> dict:
    return {"code": serializers.IntegerField(), "message": serializers.CharField()}


def envelope(name: str, data: serializers.Field | None = None, **extra: serializers.Field):
    """``{code, message, data}`` around ``data`` (or without ``data`` when None); ``extra`` sits beside it."""
    fields = _head()
    if data is not None:
        fields["data"] = data
    fields.update(extra)
    return _component(f"{name}Response", fields)


def _page_meta() -> dict:
    return {
        "total": serializers.IntegerField(),
        "page": serializers.IntegerField(),
        "page_size": serializers.IntegerField(),
        "total_pages": serializers.IntegerField(),
    }


PAGING_PARAMETERS = [
    OpenApiParameter("page", int, description="Page number, from 1."),
    OpenApiParameter("page_size", int, description="Items per page (default 20, at most 100)."),
]


def list_envelope(name: str, item: type[serializers.Serializer]):
    """A list in ``data`` with paging figures beside it (tasks, executors)."""
    return envelope(name, item(many=True), **_page_meta())


def page_envelope(name: str, item: type[serializers.Serializer]):
    """Spec 000 §4.2.3 paging inside ``data`` (executions)."""
    page = _component(f"{name}Page", {"data": item(many=True), **_page_meta()})
    return envelope(name, page)


ERROR_BODY = _component(
    "Error",
    {
        "code": serializers.IntegerField(help_text="Business code (spec 000 §9.2) or the HTTP status."),
        "message": serializers.CharField(),
        "error": serializers.CharField(),
        "details": serializers.DictField(),
        "timestamp": serializers.DateTimeField(),
        "path": serializers.CharField(),
    },
)

_ERROR_TEXT = {
    400: "Invalid input (10002 for a bad cron expression)",
    404: "Not found (10003 task, 20001 executor, 30001 execution)",
    409: "Conflict (10001 name taken, 10004/30002 state forbids, 20002 instance id taken)",
    413: "Request body too large",
    415: "Unsupported media type",
    503: "Database unavailable (40002)",
}


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    return {code: OpenApiResponse(ERROR_BODY, description=_ERROR_TEXT.get(code, "Error")) for code in statuses}
