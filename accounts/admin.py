"""API keys in the console: adding one shows the full key once, in a message; the list shows prefix, role,
last use and revocation; revoking is an action. The hash is never shown."""

from __future__ import annotations

from django.contrib import admin, messages

from accounts import services
from accounts.models import ApiKey
from console.display import EMPTY
from core.clock import utc_now


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "shown_prefix", "role", "user", "created_by", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["role", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__username"]
    raw_id_fields = ["user"]
    list_select_related = ["user"]
    readonly_fields = ["shown_prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "role", "user"]
        return ["name", "shown_prefix", "role", "user", "created_by", "created_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        # A key's role and owner are what it was issued with: to change them, issue a new key and revoke this.
        return self.readonly_fields + (["role", "user"] if obj is not None else [])

    @admin.display(description="Key", ordering="prefix")
    def shown_prefix(self, obj: ApiKey) -> str:
        return f"dts_{obj.prefix}_…" if obj.prefix else EMPTY

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        raw_key = services.api_key_issue(obj, created_by=request.user.get_username())
        messages.warning(request, f"The new API key is {raw_key} — copy it now: it is not shown again.")

    @admin.action(description="Revoke the selected API keys", permissions=["change"])
    def revoke(self, request, queryset):
        count = services.api_keys_revoke(queryset, now=utc_now())
        self.message_user(request, f"Revoked {count} API key{'s' if count != 1 else ''}.", messages.SUCCESS)
