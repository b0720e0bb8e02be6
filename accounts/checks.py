"""System checks on the credentials the deployment configures."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register

MIN_REGISTRATION_KEY_LENGTH = 32


@register(Tags.security)
def registration_key_is_long_enough(app_configs=None, **kwargs) -> list[Error]:
    """A guessable shared registration key lets anyone create executors (and declare tasks): with DEBUG off it
    must be at least 32 characters (``python -c 'import secrets; print(secrets.token_urlsafe(32))'``)."""
    key = settings.SCHEDULER_REGISTRATION_KEY
    if settings.DEBUG or not key or len(key) >= MIN_REGISTRATION_KEY_LENGTH:
        return []
    return [Error(
        f"SCHEDULER_REGISTRATION_KEY is {len(key)} characters long; with DEBUG off it must be at least "
        f"{MIN_REGISTRATION_KEY_LENGTH}.",
        hint="Generate one: python -c 'import secrets; print(secrets.token_urlsafe(32))'",
        id="accounts.E001",
    )]
