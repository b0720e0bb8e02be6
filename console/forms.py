"""Form pieces shared by the console's pages: JSON objects under the API's rules, DRF errors as form errors."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from rest_framework import serializers

from scheduler_project.fields import JSONObjectField, LabelsField

MONO = {"class": "vLargeTextField console-mono", "spellcheck": "false", "autocomplete": "off"}


def drf_messages(detail: Any) -> list[str]:
    """Flatten a DRF error detail (string, list or dict) into plain messages."""
    if isinstance(detail, dict):
        return [message for value in detail.values() for message in drf_messages(value)]
    if isinstance(detail, list):
        return [message for value in detail for message in drf_messages(value)]
    return [str(detail)]


def run_drf_validator(validator, value: Any) -> Any:
    """Run one of the API's validators and turn its refusal into a form error."""
    try:
        result = validator(value)
    except serializers.ValidationError as exc:
        raise forms.ValidationError(drf_messages(exc.detail)) from None
    return value if result is None else result


class JSONObjectFormField(forms.JSONField):
    """A JSON object typed into a textarea, under the API's rules (an object, storable in every supported
    database, bounded in size); pretty-printed when shown again."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("widget", forms.Textarea(attrs={**MONO, "rows": 6}))
        super().__init__(**kwargs)

    def clean(self, value: Any) -> dict:
        return run_drf_validator(JSONObjectField().run_validation, super().clean(value))

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


class LabelsFormField(JSONObjectFormField):
    """Labels as a JSON object of strings, under the API's rules (``scheduler_project.fields.LabelsField``)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("widget", forms.Textarea(attrs={**MONO, "rows": 3}))
        super().__init__(**kwargs)

    def clean(self, value: Any) -> dict:
        return run_drf_validator(LabelsField().run_validation, super().clean(value))
