"""Channel URLs at rest: Fernet (AES-128-CBC + HMAC-SHA256) with a key derived from SECRET_KEY, and the one
masked form they are shown in. Rotating SECRET_KEY makes stored URLs unreadable: re-enter them then."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from scheduler_project.redaction import MASK

_CONTEXT = b"scheduler alerts channel url v1\n"


def _fernet() -> Fernet:
    digest = hashlib.sha256(_CONTEXT + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(text: str) -> str:
    return _fernet().encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    """The stored URL; "" when it cannot be read (SECRET_KEY changed): the channel then fails visibly."""
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        return ""


def mask_url(url: str) -> str:
    """Only the scheme survives: hosts and paths of such URLs carry tokens too (``slack://T/B/C``)."""
    scheme = urlsplit(url).scheme if "://" in url else ""
    return f"{scheme}://{MASK}" if scheme else MASK
