"""Form pieces shared by the console's pages: JSON objects under the API's rules, DRF errors as form errors."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from rest_framework import serializers

from scheduler_project.fields import JSONObjectField

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


class TimelineForm(forms.Form):
    """The timeline's filters (GET): a zoom preset, task and executor (name or id), statuses, lane count.
    A bad value falls back to its default: the page always renders."""

    zoom = forms.ChoiceField(choices=[(zoom, zoom) for zoom in ("1h", "6h", "24h", "7d")], required=False,
                             initial="6h")
    task = forms.CharField(required=False, max_length=200, label="Task", help_text="name or id")
    executor = forms.CharField(required=False, max_length=200, label="Executor", help_text="name, instance or id")
    status = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple,
        choices=[(status, status) for status in ("success", "failed", "timeout", "running", "pending", "skipped",
                                                 "cancelled")])
    lanes = forms.IntegerField(required=False, min_value=1, max_value=100, initial=20, label="Lanes")

    def cleaned_value(self, name: str) -> Any:
        """The field's value, or its default when left out or invalid (each field on its own)."""
        if self.is_bound and not self.is_valid() and name in self.errors:
            return self.fields[name].initial
        value = self.cleaned_data.get(name) if self.is_bound else None
        return self.fields[name].initial if value in (None, "", []) else value

    def filters(self):
        from console.timeline import matching_executors, matching_tasks
        from executions.selectors import TimelineFilters

        return TimelineFilters(task_ids=matching_tasks(self.cleaned_value("task") or ""),
                               executor_ids=matching_executors(self.cleaned_value("executor") or ""),
                               statuses=tuple(self.cleaned_value("status") or ()),
                               lanes=self.cleaned_value("lanes"))
