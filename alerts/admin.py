"""The console's alert pages: channels (URL write-only, shown masked; "send a test notification"), rules,
incidents (open/resolved, per task and executor) and notifications with their delivery state."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from alerts import services
from alerts.channels import url_problem
from alerts.models import GLOBAL_RULE_KEY, AlertRule, Channel, Incident, Notification
from console.actions import RefusalsAsMessagesMixin, run_each
from console.display import badge, when
from console.paging import BoundedCountAdminMixin
from core.alerting import parse_silence_windows
from core.clock import utc_now


class ChannelForm(forms.ModelForm):
    """The URL is typed, never shown: left empty on an existing channel, the stored one stays."""

    url = forms.CharField(
        required=False, max_length=2000, widget=forms.PasswordInput(render_value=False),
        help_text="An Apprise URL (mailto://, slack://, msteams://, discord://, tgram://, pagerduty://, "
                  "opsgenie://, ntfy://, json://...), signed+https://host/path for our signed webhook, or log:// "
                  "for the scheduler's own log. Stored encrypted; leave empty to keep the current one.")

    class Meta:
        model = Channel
        fields = ["name", "url", "enabled", "mute_until", "rate_limit", "rate_window_seconds"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"].strip()
        if not url and not self.instance.url_encrypted:
            raise forms.ValidationError("A new channel needs a URL.")
        if url:
            problem = url_problem(url)
            if problem:
                raise forms.ValidationError(problem)
        return url


@admin.register(Channel)
class ChannelAdmin(RefusalsAsMessagesMixin, admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "masked", "enabled", "mute_until", "rate_limit", "rate_window_seconds"]
    readonly_fields = ["masked", "signing_secret_hint"]
    actions = ["send_test"]

    @admin.display(description="URL")
    def masked(self, channel: Channel) -> str:
        return channel.masked_url if channel.pk else "—"

    @admin.display(description="Webhook signing secret")
    def signing_secret_hint(self, channel: Channel) -> str:
        return ("Shown once, in the API's answer to the channel's creation; receivers of a signed+https:// "
                "webhook verify X-Scheduler-Signature with it.")

    def save_model(self, request, obj, form, change):
        data = {field: form.cleaned_data[field] for field in services.CHANNEL_FIELDS if field in form.cleaned_data}
        if form.cleaned_data.get("url"):
            data["url"] = form.cleaned_data["url"]
        services.channel_save(channel=obj, data=data)

    @admin.action(description="Send a test notification")
    def send_test(self, request, queryset):
        run_each(request, queryset, lambda channel: services.channel_test(channel_id=channel.pk, now=utc_now()),
                 done="Queued a test notification for")


class RuleForm(forms.ModelForm):
    class Meta:
        model = AlertRule
        fields = ["task", "enabled", "on_failure", "consecutive_failures", "on_skip", "on_recovery",
                  "duration_factor", "silence_windows", "mute_until", "channels", "on_executor_unhealthy",
                  "no_leader_seconds", "on_node_stale"]

    def clean_silence_windows(self) -> str:
        try:
            parse_silence_windows(self.cleaned_data["silence_windows"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return self.cleaned_data["silence_windows"]

    def clean_duration_factor(self):
        factor = self.cleaned_data["duration_factor"]
        if factor is not None and factor <= 1:
            raise forms.ValidationError("k must be greater than 1")
        return factor


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    form = RuleForm
    list_display = ["__str__", "enabled", "on_failure", "consecutive_failures", "on_skip", "on_recovery",
                    "duration_factor", "silence_windows", "mute_until"]
    raw_id_fields = ["task"]
    list_select_related = ["task"]

    def get_changeform_initial_data(self, request):
        """A new (task) rule's form starts from the global rule's values, as the API's creation does."""
        initial = super().get_changeform_initial_data(request)
        saved = AlertRule.objects.filter(key=GLOBAL_RULE_KEY).prefetch_related("channels").first()
        if saved is None:
            return initial
        values = {field: getattr(saved, field) for field in services.RULE_FIELDS}
        return {**values, "channels": [channel.pk for channel in saved.channels.all()], **initial}


def _time_column(field: str, description: str):
    """A list column showing a timestamp as the console does (``console.display.when``), sortable."""
    @admin.display(description=description, ordering=field)
    def column(self, obj):
        return when(getattr(obj, field))
    return column


class OpenFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "Open"), ("resolved", "Resolved")]

    def queryset(self, request, queryset):
        if self.value() in ("open", "resolved"):
            return queryset.filter(resolved_at__isnull=self.value() == "open")
        return queryset


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = ["summary", "state", "condition", "task", "executor", "count", "opened", "last_seen", "resolved"]
    list_filter = [OpenFilter, "condition"]
    list_select_related = ["task", "executor"]
    raw_id_fields = ["task", "executor", "last_execution"]
    search_fields = ["summary", "subject"]
    readonly_fields = [field.name for field in Incident._meta.fields]

    def has_add_permission(self, request):
        return False

    @admin.display(description="State")
    def state(self, incident: Incident):
        return badge("failed", "open") if incident.is_open else badge("success", "resolved")

    opened = _time_column("opened_at", "Opened")
    last_seen = _time_column("last_seen_at", "Last seen")
    resolved = _time_column("resolved_at", "Resolved")


@admin.register(Notification)
class NotificationAdmin(BoundedCountAdminMixin, admin.ModelAdmin):
    list_display = ["title", "channel", "kind", "delivery", "attempts", "last_error", "created", "sent"]
    list_filter = ["status", "kind", "channel"]
    list_select_related = ["channel"]
    raw_id_fields = ["incident", "digest"]
    readonly_fields = [field.name for field in Notification._meta.fields]

    def has_add_permission(self, request):
        return False

    @admin.display(description="Status", ordering="status")
    def delivery(self, notification: Notification):
        colour = {"sent": "success", "failed": "failed", "pending": "pending", "sending": "running",
                  "held": "skipped", "digested": "success", "suppressed": "cancelled"}[notification.status]
        return badge(colour, notification.get_status_display())

    created = _time_column("created_at", "Created")
    sent = _time_column("sent_at", "Sent")
