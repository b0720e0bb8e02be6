"""Secrets out of what people and log shippers see.

``mask_secrets(value)`` is applied where parameters, results and metadata are displayed or logged: the
console's pretty-printers and change forms, the JSON log formatter's extra fields, and the API's answers to
every role below admin (``scheduler_project.fields.MaskedJSONField``). Admins read values through the API:
they are the ones who change tasks, and a read-modify-write must not write the mask back.

Matching is by key, not by value: a value under a key that names a secret (``password``, ``db_password``,
``X-Api-Key``, ``sessionCookie``…) is replaced whatever its type, a dict or list included. Keys are
normalized (lower case, without ``-``, ``_``, ``.`` and spaces) and searched for the markers as substrings.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "••••••"

# Normalized forms (see _normalize): "api_key", "api-key" and "ApiKey" all become "apikey".
_SECRET_MARKERS = (
    "password", "passwd", "pwd", "secret", "token", "apikey", "accesskey", "privatekey", "authorization",
    "credential", "cookie", "session",
)
_SEPARATORS = re.compile(r"[\s_.\-]+")


def is_secret_key(key: Any) -> bool:
    """Whether a value stored under ``key`` is masked."""
    if not isinstance(key, str):
        return False
    normalized = _normalize(key)
    return any(marker in normalized for marker in _SECRET_MARKERS)


def mask_secrets(value: Any) -> Any:
    """A copy of ``value`` in which every value under a secret-looking key is ``MASK``.

    Dicts, lists and tuples are copied all the way down (the input is never modified) and keep their shape;
    anything else is returned as it is. A structure that contains itself is cut at the repetition.
    """
    return _masked(value, frozenset())


def restore_masked(submitted: Any, stored: Any) -> Any:
    """``submitted`` with every ``MASK`` left untouched under a secret key put back to its ``stored`` value.

    For forms that show masked values: a field sent back unchanged keeps its secrets, a secret typed over the
    mask replaces it, and a key removed from the form is removed.
    """
    if isinstance(submitted, dict) and isinstance(stored, dict):
        restored = {}
        for key, item in submitted.items():
            if key in stored and is_secret_key(key) and item == MASK:
                restored[key] = stored[key]
            else:
                restored[key] = restore_masked(item, stored.get(key))
        return restored
    if isinstance(submitted, list) and isinstance(stored, list):
        return [restore_masked(item, stored[index] if index < len(stored) else None)
                for index, item in enumerate(submitted)]
    return submitted


def _masked(value: Any, ancestors: frozenset[int]) -> Any:
    if not isinstance(value, dict | list | tuple):
        return value
    if id(value) in ancestors:
        return "<recursion>"
    inside = ancestors | {id(value)}
    if isinstance(value, dict):
        return {key: MASK if is_secret_key(key) else _masked(item, inside) for key, item in value.items()}
    items = [_masked(item, inside) for item in value]
    return items if isinstance(value, list) else tuple(items)


def _normalize(key: str) -> str:
    return _SEPARATORS.sub("", key).lower()


# ``password=hunter2``, ``"token": "abc"``, ``API_KEY: xyz`` in free text such as a run's log lines.
_SECRET_ASSIGNMENT = re.compile(
    r"""(?P<key>["']?[A-Za-z][\w.-]*["']?)(?P<sep>\s*[=:]\s*)(?P<value>"[^"]*"|'[^']*'|\S+)""")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")


def mask_text(text: str) -> str:
    """``text`` with the value after a secret-looking key (``key=value``, ``key: value``) and bearer or basic
    credentials replaced by ``MASK``: for free text shown outside the console, such as log lines in alerts."""
    def masked(match: re.Match) -> str:
        if not is_secret_key(match.group("key").strip("\"'")):
            return match.group(0)
        return f"{match.group('key')}{match.group('sep')}{MASK}"

    return _SECRET_ASSIGNMENT.sub(masked, _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text))
