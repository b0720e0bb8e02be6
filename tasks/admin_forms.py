"""Forms of the console's task pages. They check what the services would refuse, so an operator sees a form
error next to the field instead of an error page; the services stay the place where rules are enforced."""

from __future__ import annotations

import copy
from typing import Any

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator

from console.forms import MONO, JSONObjectFormField, LabelsFormField
from core.calendars import CalendarError, parse_entry
from core.clock import utc_now
from core.cron import CronError, validate_cron, zone
from scheduler_project.errors import DomainError
from tasks.choices import ScheduleType
from tasks.models import BlackoutCalendar, Task
from tasks.serializers import TaskWriteSerializer
from tasks.services import check_schedule_fields

# The task fields an operator edits; everything else (status, next_run_time…) moves through services.
EDITABLE_FIELDS = [
    "name", "schedule_type", "cron_expression", "timezone", "interval_seconds", "start_at", "end_at", "run_at",
    "jitter_seconds", "calendars", "parameters", "execution_mode", "load_balance_strategy", "executor_labels",
    "misfire_policy", "max_retry", "timeout_seconds", "priority", "max_instances",
]


def _api_bounds(field: forms.Field, name: str) -> None:
    """Give a number field the API's bounds, so the console and the API accept the same values."""
    api_field = TaskWriteSerializer().fields.get(name)
    for attr, validator, html in (("min_value", MinValueValidator, "min"), ("max_value", MaxValueValidator, "max")):
        bound = getattr(api_field, attr, None)
        if bound is not None:
            field.validators.append(validator(bound))
            field.widget.attrs[html] = bound


class TaskAdminForm(forms.ModelForm):
    parameters = JSONObjectFormField(required=False, initial=dict,
                                     help_text="A JSON object, sent to the executor with every run.")
    executor_labels = LabelsFormField(
        required=False, initial=dict, label="Executor labels",
        help_text='Only assigned executors carrying all these labels run the task, e.g. {"region": "eu"}.')

    class Meta:
        model = Task
        fields = EDITABLE_FIELDS
        widgets = {
            "cron_expression": forms.TextInput(attrs={**MONO, "class": "vTextField console-mono",
                                                      "placeholder": "*/10 * * * * *"}),
        }
        help_texts = {
            "cron_expression": "6 fields with seconds first (<code>*/10 * * * * *</code>) or classic 5 fields "
                               "(<code>*/5 * * * *</code>). Required for cron tasks.",
            "timezone": "IANA name, e.g. <code>Europe/Berlin</code>. Cron times are read in this zone.",
            "interval_seconds": "For interval tasks: fire every N seconds from the start time.",
            "start_at": "No fire before this time (interval tasks count from it; empty: from when saved).",
            "end_at": "No fire after this time.",
            "jitter_seconds": "Each run is dispatched up to this many seconds after its fire time, the same delay "
                              "on every scheduler node (spreads many tasks due at once).",
            "calendars": "Fires in any of these blackout calendars are recorded as skipped.",
            "run_at": "For date tasks: the one time the task fires.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("max_retry", "timeout_seconds", "interval_seconds", "priority", "max_instances",
                     "jitter_seconds"):
            if name in self.fields:
                _api_bounds(self.fields[name], name)

    def clean_cron_expression(self) -> str:
        return " ".join((self.cleaned_data.get("cron_expression") or "").split())

    def clean_timezone(self) -> str:
        name = (self.cleaned_data.get("timezone") or "UTC").strip()
        try:
            zone(name)
        except CronError as exc:
            raise forms.ValidationError(str(exc)) from None
        return name

    def clean(self) -> dict:
        data = super().clean()
        expression = data.get("cron_expression")
        if data.get("schedule_type") == ScheduleType.CRON and expression and "timezone" in data:
            try:
                validate_cron(expression, utc_now(), data["timezone"])
            except CronError as exc:
                self.add_error("cron_expression", str(exc))
        return data

    def _post_clean(self) -> None:
        super()._post_clean()
        if self.errors:
            return
        # The service's cross-field rules (the field each schedule type needs, a date in the future), run on
        # a copy of the task as it would be saved.
        run_at_changed = self.instance._state.adding or "run_at" in self.changed_data
        try:
            check_schedule_fields(copy.copy(self.instance), utc_now(), run_at_changed=run_at_changed)
        except DomainError as exc:
            field = exc.details.get("field")
            for message in exc.details.get("errors", {}).get(field, [exc.error]):
                self.add_error(field if field in self.fields else None, message)



class BackfillForm(forms.Form):
    start_time = forms.SplitDateTimeField(label="From", help_text="UTC; fire times at this instant included.")
    end_time = forms.SplitDateTimeField(label="To", help_text="UTC; fire times at this instant included.")

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("start_time"), data.get("end_time")
        if start and end and end < start:
            self.add_error("end_time", "must not be before the start")
        return data


class CalendarAdminForm(forms.ModelForm):
    entries_text = forms.CharField(
        label="Entries", required=False, widget=forms.Textarea(attrs={**MONO, "rows": 8}),
        help_text="One per line: a date <code>2026-12-25</code>, a date range <code>2026-12-24..2026-12-26</code> "
                  "or a weekly window <code>Sun 02:00-04:00</code> (local time of the calendar's zone).")

    class Meta:
        model = BlackoutCalendar
        fields = ["name", "timezone", "description"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["entries_text"].initial = "\n".join(self.instance.entries or [])

    def clean_timezone(self) -> str:
        return TaskAdminForm.clean_timezone(self)

    def clean_entries_text(self) -> list[str]:
        entries = [line.strip() for line in self.cleaned_data.get("entries_text", "").splitlines() if line.strip()]
        problems = []
        for entry in entries:
            try:
                parse_entry(entry)
            except CalendarError as exc:
                problems.append(str(exc))
        if problems:
            raise forms.ValidationError(problems)
        return entries


class TriggerForm(forms.Form):
    parameters = JSONObjectFormField(
        required=False, initial=dict, label="Parameters",
        help_text="Optional JSON object, merged over each task's own parameters for this run only.",
    )

    def clean_parameters(self) -> dict:
        return self.cleaned_data.get("parameters") or {}
