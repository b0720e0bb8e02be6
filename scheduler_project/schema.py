"""OpenAPI descriptions of the envelopes, so the schema states the bodies clients really receive."""

from __future__ import annotations

from drf_spectacular.drainage import set_override
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

from scheduler_project.pagination import COUNT_AHEAD

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
    body = _component(f"{name}Response", fields)
    # The envelope is the whole body, never an item: without this drf-spectacular wraps the body of a
    # viewset's ``list`` action in an array, which is not what the client receives.
    set_override(body, "many", False)
    return body


def _page_meta() -> dict:
    return {
        "total": serializers.IntegerField(),
        "page": serializers.IntegerField(),
        "page_size": serializers.IntegerField(),
        "total_pages": serializers.IntegerField(),
        "total_is_exact": serializers.BooleanField(
            help_text=f"False when more than {COUNT_AHEAD} rows match past this page: `total` and `total_pages` "
            "are then lower bounds (the next pages still answer)."),
    }


PAGING_PARAMETERS = [
    OpenApiParameter("page", int, description="Page number, from 1."),
    OpenApiParameter("page_size", int, description="Items per page (default 20, at most 100)."),
    OpenApiParameter("limit", int, description="Another name for page_size (spec 004's examples use it)."),
]


def list_envelope(name: str, item: type[serializers.Serializer]):
    """A list in ``data`` with paging figures beside it (tasks, executors)."""
    return envelope(name, item(many=True), **_page_meta())


def page_envelope(name: str, item: type[serializers.Serializer], **extra: serializers.Field):
    """Spec 000 §4.2.3 paging inside ``data`` (executions); ``extra`` sits beside the paging figures."""
    page = _component(f"{name}Page", {"data": item(many=True), **_page_meta(), **extra})
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
    401: "No credentials, or credentials not accepted",
    403: "Authenticated, but the role does not allow this",
    404: "Not found (10003 task, 20001 executor, 30001 execution)",
    409: "Conflict (10001 name taken, 10004/30002 state forbids, 20002 instance id taken)",
    413: "Request body too large",
    415: "Unsupported media type",
    429: "Too many failed authentications from this address",
    503: "Database unavailable (40002)",
}


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    return {code: OpenApiResponse(ERROR_BODY, description=_ERROR_TEXT.get(code, "Error")) for code in statuses}


class StrictSerializerSchema(OpenApiSerializerExtension):
    """A StrictSerializer refuses keys it does not know, so its request body says so
    (``additionalProperties: false``); otherwise a client, or a fuzzer, may send extras the schema allows.
    (The read-only keys some updates tolerate, so that a client can PUT back what it read, stay out of the
    schema: they are ignored, not input.)"""

    target_class = "scheduler_project.fields.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        if direction == "request":
            schema["additionalProperties"] = False
        return schema


# Security schemes whose failures count towards the per-address throttle (accounts.throttling): a client
# over the rate is answered 429 whatever it presents.
THROTTLED_SCHEMES = frozenset({"apiKey", "jwtAuth", "basicAuth"})


def declare_auth_errors(result, generator, request, public):
    """Postprocessing hook: every operation that needs credentials (its security requirements do not
    include the anonymous ``{}``) can answer 401 and 403 in the error body, and 429 where the API's
    credentials are checked; whichever view it is."""
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            security = operation.get("security") if isinstance(operation, dict) else None
            if not security or {} in security:
                continue
            statuses = [401, 403]
            if THROTTLED_SCHEMES & {name for requirement in security for name in requirement}:
                statuses.append(429)
            for status in statuses:
                operation["responses"].setdefault(str(status), {**error, "description": _ERROR_TEXT[status]})
    return result
