"""API keys: issue, revoke, and check a presented key.

A key reads ``dts_<prefix>_<secret>``: the prefix (8 lowercase letters and digits) is stored in clear and
indexed, so a presented key is found with one lookup; the whole key is stored only as its SHA-256 hash,
compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save

from accounts.choices import Role
from accounts.models import ApiKey

KEY_SCHEME = "dts"
PREFIX_LENGTH = 8
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
# last_used_at is written at most once per this interval per key: not one UPDATE per request.
LAST_USED_RESOLUTION = timedelta(seconds=60)


class UnknownApiKey(LookupError):
    """No API key has this prefix (revoke_api_key)."""


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def looks_like_api_key(token: str) -> bool:
    return token.startswith(f"{KEY_SCHEME}_")


def _new_prefix() -> str:
    return "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))


def api_key_issue(api_key: ApiKey, *, created_by: str = "") -> str:
    """Gives an unsaved ``api_key`` (name, role, user set) a fresh prefix and secret, saves it, and returns
    the full key: the only time it exists in clear."""
    api_key.prefix = _free_prefix()
    raw_key = f"{KEY_SCHEME}_{api_key.prefix}_{secrets.token_urlsafe(32)}"
    api_key.key_hash = hash_key(raw_key)
    api_key.created_by = created_by
    api_key.save(force_insert=True)
    return raw_key


def _free_prefix() -> str:
    # Two keys share a prefix with odds of 1 in 36^8 per pair; the unique index catches a concurrent twin.
    for _ in range(5):
        prefix = _new_prefix()
        if not ApiKey.objects.filter(prefix=prefix).exists():
            return prefix
    raise RuntimeError("could not find a free API key prefix")


def api_key_create(*, name: str, role: str, username: str | None = None,
                   created_by: str = "") -> tuple[ApiKey, str]:
    """A new key with ``role``, optionally owned by the user ``username``; returns it and the full key."""
    if role not in Role.values:
        raise ValueError(f"unknown role {role!r} (one of {', '.join(Role.values)})")
    user = get_user_model().objects.get_by_natural_key(username) if username else None
    api_key = ApiKey(name=name, role=role, user=user)
    return api_key, api_key_issue(api_key, created_by=created_by)


def api_key_revoke(*, prefix: str, now: datetime) -> ApiKey:
    """Revokes the key with ``prefix`` (``dts_<prefix>_...``, the key itself, or the bare prefix); revoking
    twice keeps the first time. Raises UnknownApiKey."""
    prefix = _prefix_of(prefix)
    ApiKey.objects.filter(prefix=prefix, revoked_at__isnull=True).update(revoked_at=now)
    checked_keys.forget_all()  # update() sends no post_save
    try:
        return ApiKey.objects.get(prefix=prefix)
    except ApiKey.DoesNotExist:
        raise UnknownApiKey(f"no API key with prefix {prefix!r}") from None


def api_keys_revoke(keys, *, now: datetime) -> int:
    """Revokes the not yet revoked keys of a queryset; returns how many."""
    revoked = keys.filter(revoked_at__isnull=True).update(revoked_at=now)
    checked_keys.forget_all()  # update() sends no post_save
    return revoked


def _prefix_of(text: str) -> str:
    text = text.strip()
    if looks_like_api_key(text):
        return text.split("_", 2)[1]
    return text


class CheckedKeys:
    """Keys found active in the last ``seconds``, by the hash of the whole key: an API request then costs
    no lookup (the lookup was 1.2 ms of a list page's 10 ms of CPU, issue #8).

    A key revoked, or its user deactivated, through the ORM of this process is forgotten at once (the
    receivers below); through another process (another gunicorn worker, ``revoke_api_key``) the key keeps
    working here for at most ``seconds``. Only successes are kept, so a new key is never refused from here
    and guessed keys cannot fill it."""

    seconds = 2.0
    max_keys = 1000
    timer = staticmethod(time.monotonic)  # swapped by tests

    def __init__(self) -> None:
        self._found: dict[str, tuple[float, ApiKey]] = {}

    def get(self, key_hash: str) -> ApiKey | None:
        entry = self._found.get(key_hash)
        if entry is None or self.timer() - entry[0] >= self.seconds:
            return None
        return entry[1]

    def put(self, key_hash: str, api_key: ApiKey) -> None:
        if len(self._found) >= self.max_keys:
            self._found.clear()
        self._found[key_hash] = (self.timer(), api_key)

    def forget_all(self, **_signal) -> None:
        self._found.clear()


checked_keys = CheckedKeys()
for _name, _signal in (("saved", post_save), ("deleted", post_delete)):
    _signal.connect(checked_keys.forget_all, sender=ApiKey, weak=False, dispatch_uid=f"checked_keys_{_name}")
    _signal.connect(checked_keys.forget_all, sender=settings.AUTH_USER_MODEL, weak=False,
                    dispatch_uid=f"checked_keys_user_{_name}")


def api_key_check(raw_key: str) -> ApiKey | None:
    """The active key ``raw_key`` is, or None (unknown, malformed, revoked, or its user deactivated).
    A key found active is trusted for ``CheckedKeys.seconds`` without a lookup."""
    parts = raw_key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or len(parts[1]) != PREFIX_LENGTH:
        return None
    presented_hash = hash_key(raw_key)
    api_key = checked_keys.get(presented_hash)
    if api_key is not None:
        return api_key
    api_key = ApiKey.objects.select_related("user").filter(prefix=parts[1]).first()
    if api_key is None or not hmac.compare_digest(api_key.key_hash, presented_hash):
        return None
    if not api_key.is_active:
        return None
    checked_keys.put(presented_hash, api_key)
    return api_key


def api_key_touch(api_key: ApiKey, *, now: datetime) -> None:
    """Records that ``api_key`` was used, unless that was recorded less than a minute ago."""
    last = api_key.last_used_at
    if last is not None and now - last < LAST_USED_RESOLUTION:
        return
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    api_key.last_used_at = now
