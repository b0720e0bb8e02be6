"""Serializer building blocks shared by every app's API."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


@extend_schema_field({"type": "object", "additionalProperties": True})
class JSONObjectField(serializers.JSONField):
    """A JSON object (never a list or scalar), bounded in size; ``null`` is read as ``{}`` unless
    ``null_as_empty=False``, where it stays ``None``."""

    default_error_messages = {
        "not_object": "must be a JSON object",
        "too_large": "must be at most {max_bytes} bytes when serialized",
    }

    def __init__(self, *, null_as_empty: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("allow_null", True)
        self.null_as_empty = null_as_empty
        super().__init__(**kwargs)

    def validate_empty_values(self, data: Any):
        if data is None and self.null_as_empty:
            return True, {}
        return super().validate_empty_values(data)

    def to_internal_value(self, data: Any) -> dict:
        if not isinstance(data, dict):
            self.fail("not_object")
        value = super().to_internal_value(data)
        max_bytes = settings.JSON_FIELD_MAX_BYTES
        if len(json.dumps(value, ensure_ascii=False).encode()) > max_bytes:
            self.fail("too_large", max_bytes=max_bytes)
        return value


class StrictSerializer(serializers.Serializer):
    """Rejects keys it does not know, so a typo (``cron`` for ``cron_expression``) is an error, not a no-op.

    Keys of the resource's read-only representation (``id``, ``created_at``…) are tolerated, because
    clients commonly PUT back what they read.
    """

    tolerated_read_only: frozenset[str] = frozenset()

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = set(data) - set(self.fields) - self.tolerated_read_only
            if unknown:
                raise serializers.ValidationError(
                    {name: [serializers.ErrorDetail("unknown field", code="unknown_field")] for name in sorted(unknown)}
                )
        return super().to_internal_value(data)


def iso(dt) -> str | None:
    """ISO 8601 in UTC with a Z, the spec's timestamp format."""
    if dt is None:
        return None
    return serializers.DateTimeField().to_representation(dt)
