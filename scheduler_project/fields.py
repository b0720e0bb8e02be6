"""Serializer building blocks shared by every app's API."""

from __future__ import annotations

import json
import re
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from scheduler_project.redaction import mask_secrets

# MariaDB's JSON_VALID check (its JSON columns) refuses documents nested deeper than 32 levels, so a deeper
# object would pass validation here and fail on INSERT there. One limit for every database.
MAX_JSON_DEPTH = 30


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_surrogate(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def _json_problem(value: Any, depth: int = 1) -> str | None:
    """Why ``value`` cannot be stored in every supported database's JSON column, or None.

    Deep nesting (MariaDB), NUL characters (PostgreSQL jsonb) and lone UTF-16 surrogates (no UTF-8
    encoding at all) are refused here, the same way on every database.
    """
    if isinstance(value, dict | list):
        if depth > MAX_JSON_DEPTH:
            return f"must not be nested more than {MAX_JSON_DEPTH} levels deep"
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str):
                problem = _text_problem(key)
                if problem:
                    return problem
            problem = _json_problem(item, depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, str):
        return _text_problem(value)
    return None


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "must not contain NUL (\\u0000) characters"
    if _has_surrogate(text):
        return "must be valid Unicode text (found a lone surrogate)"
    return None


@extend_schema_field({"type": "object", "additionalProperties": True})
class JSONObjectField(serializers.JSONField):
    """A JSON object (never a list or scalar), bounded in size; ``null`` is read as ``{}`` unless
    ``null_as_empty=False``, where it stays ``None``."""

    default_error_messages = {
        "not_object": "must be a JSON object",
        "too_large": "must be at most {max_bytes} bytes when serialized",
        "unstorable": "{problem}",
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
        problem = _json_problem(data)
        if problem:
            self.fail("unstorable", problem=problem)
        value = super().to_internal_value(data)
        max_bytes = settings.JSON_FIELD_MAX_BYTES
        if len(json.dumps(value, ensure_ascii=False).encode()) > max_bytes:
            self.fail("too_large", max_bytes=max_bytes)
        return value


def _type_error(field: serializers.Field, value: Any) -> serializers.ErrorDetail | None:
    """JSON types are not coerced: ``"3"`` is not an integer and ``5`` is not a string (spec 000 models are
    typed; a Go client's ``int`` never arrives as a string). Null is left to the field's own rules."""
    if value is None or field.read_only:
        return None
    if isinstance(field, serializers.IntegerField):
        if isinstance(value, bool) or not isinstance(value, int):
            return serializers.ErrorDetail("must be an integer (a JSON number without a fraction)", code="invalid")
    elif isinstance(field, serializers.BooleanField):
        if not isinstance(value, bool):
            return serializers.ErrorDetail("must be a boolean (true or false)", code="invalid")
    elif isinstance(field, serializers.CharField | serializers.ChoiceField | serializers.DateTimeField):
        if not isinstance(value, str):
            return serializers.ErrorDetail("must be a string", code="invalid")
        problem = _text_problem(value)
        if problem:
            return serializers.ErrorDetail(problem, code="invalid")
    return None


class StrictSerializer(serializers.Serializer):
    """Rejects keys it does not know, so a typo (``cron`` for ``cron_expression``) is an error, not a no-op,
    and values of the wrong JSON type, so ``"3"`` for an integer is an error, not a silent conversion.

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
            wrong = {
                name: [error]
                for name, field in self.fields.items()
                if name in data and (error := _type_error(field, data[name])) is not None
            }
            if wrong:
                raise serializers.ValidationError(wrong)
        return super().to_internal_value(data)


class EmptyBodySerializer(StrictSerializer):
    """For actions that take no input (pause, resume, stop): no body, or ``{}``. Anything else, malformed
    JSON included, is refused rather than silently ignored."""


def optional_body(serializer_class: type[serializers.Serializer], request) -> dict:
    """Validate a body that may be left out altogether (no bytes means ``{}``)."""
    body = serializer_class(data=request.data if request.body else {})
    body.is_valid(raise_exception=True)
    return body.validated_data


# Whether the request being answered may read secret values (scheduler_project.redaction) in JSON fields:
# set by the API's permission check (accounts.permissions.HasRole) for admins; False for everything else,
# every request starting from False (accounts.permissions.SecretsHiddenByDefault).
secrets_visible: ContextVar[bool] = ContextVar("secrets_visible", default=False)


def as_shown(value: Any) -> Any:
    """A JSON value as stored for admins; for every other role, values under secret-looking keys
    (``password``, ``api_token``, ``access_key``…) are replaced by the mask the console shows."""
    return value if secrets_visible.get() else mask_secrets(value)


class MaskedJSONField(serializers.JSONField):
    """A JSON value the API shows ``as_shown``."""

    def to_representation(self, value):
        return as_shown(super().to_representation(value))


class LabelsField(serializers.DictField):
    """Labels: up to 20 string keys (1-63 characters) to string values (up to 255), e.g. {"region": "eu"}."""

    MAX_LABELS = 20

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("child", serializers.CharField(max_length=255, allow_blank=True))
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> dict:
        labels = super().to_internal_value(data)
        if len(labels) > self.MAX_LABELS:
            raise serializers.ValidationError(f"at most {self.MAX_LABELS} labels")
        if any(not 1 <= len(key) <= 63 for key in labels):
            raise serializers.ValidationError("a label key has 1 to 63 characters")
        return labels
