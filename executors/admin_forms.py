"""Forms of the console's executor pages, checking URLs and metadata with the API's own rules."""

from __future__ import annotations

from django import forms

from console.display import MaskedJSONFieldsMixin
from console.forms import JSONObjectFormField, LabelsFormField, run_drf_validator
from executors.models import Executor
from executors.serializers import validate_executor_url


class ExecutorAdminForm(MaskedJSONFieldsMixin, forms.ModelForm):
    masked_json_fields = ("metadata",)  # executors may label themselves with credentials; never show them
    metadata = JSONObjectFormField(required=False, initial=dict, help_text="A JSON object (free-form labels).")
    labels = LabelsFormField(required=False, initial=dict,
                             help_text='Labels tasks can target with executor_labels, e.g. {"region": "eu"}.')

    class Meta:
        model = Executor
        fields = ["name", "instance_id", "base_url", "health_check_url", "status", "status_reason", "metadata",
                  "labels"]
        help_texts = {
            "base_url": "Where the scheduler POSTs <code>/execute</code> and <code>/stop</code>.",
            "health_check_url": "Empty means <code>{base_url}/health</code>.",
            "status": "Only online executors get runs. Maintenance stays until an operator lifts it.",
        }

    def clean_base_url(self) -> str:
        return run_drf_validator(validate_executor_url, self.cleaned_data["base_url"].strip())

    def clean_health_check_url(self) -> str:
        value = (self.cleaned_data.get("health_check_url") or "").strip()
        return run_drf_validator(validate_executor_url, value) if value else value


class StatusReasonForm(forms.Form):
    reason = forms.CharField(max_length=500, required=False, label="Reason",
                             widget=forms.TextInput(attrs={"class": "vLargeTextField", "size": 60}),
                             help_text="Shown next to the status, e.g. “kernel upgrade until 14:00”.")
