from django.conf import settings
from django.db import models

from accounts.choices import Role


class ApiKey(models.Model):
    """A bearer credential ``dts_<prefix>_<secret>``. Only the SHA-256 of the whole key is stored; the
    prefix stays visible so a key can be recognised, looked up and revoked without knowing it."""

    name = models.CharField(max_length=100, help_text="What the key is for, e.g. 'deploy pipeline'.")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    role = models.CharField(max_length=16, choices=Role.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                             related_name="api_keys", help_text="Optional owner; the key acts with its own role.")
    created_by = models.CharField(max_length=150, blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        db_table = "api_keys"
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} (dts_{self.prefix}_…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and (self.user_id is None or self.user.is_active)
