"""Sending one notification to one channel URL. Three kinds:

- ``log://``: the scheduler's own log (logger ``alerts.log``), for trying alerts out (the quick start).
- ``signed+https://host/path`` (or ``signed+http://``): our webhook. A JSON POST signed like the executor
  channel (``scheduler_sdk.signing``: ``X-Scheduler-Timestamp``, ``-Nonce``, ``-Signature``) with the channel's
  signing secret; ``X-Scheduler-Notification`` carries the notification id, the same on every attempt, so a
  receiver can drop a repeat. No redirects are followed.
- anything else: an Apprise URL (``mailto://``, ``slack://``, ``msteams://``, ``discord://``, ``tgram://``,
  ``pagerduty://``, ``opsgenie://``, ``ntfy://``, ``json://``...), sent by Apprise.

Errors never carry the URL: it holds the channel's credentials. Apprise's own log records are kept out of
the scheduler's log (they can name hosts and recipients) and reach it only scrubbed, as the last error.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import apprise
import requests

from scheduler_project.redaction import MASK
from scheduler_sdk.signing import signature_headers

logger = logging.getLogger(__name__)
log_channel = logging.getLogger("alerts.log")
_apprise_log = logging.getLogger("apprise")

LOG_SCHEME = "log"
SIGNED_PREFIX = "signed+"
HEADER_NOTIFICATION = "X-Scheduler-Notification"
WEBHOOK_TIMEOUT_SECONDS = 10
MAX_ERROR_CHARS = 480


class DeliveryError(Exception):
    """The channel did not take the message; ``reason`` is safe to store and show (no URL in it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Message:
    notification_id: str
    title: str
    body: str
    kind: str


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a channel, or None. Checked when a channel is saved."""
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if not scheme:
        return "not a URL: expected scheme://..."
    if scheme == LOG_SCHEME:
        return None
    if scheme.startswith(SIGNED_PREFIX):
        inner = urlsplit(url[len(SIGNED_PREFIX):])
        if inner.scheme not in ("http", "https") or not inner.hostname:
            return "a signed webhook is signed+https://host/path (or signed+http://)"
        return None
    _quiet_apprise()
    if not apprise.Apprise().add(url):
        return f"Apprise cannot use this {scheme}:// URL (unknown service or missing parts)"
    return None


def send(url: str, message: Message, *, signing_secret: str) -> None:
    """Deliver ``message`` or raise DeliveryError."""
    if not url:
        raise DeliveryError("the stored URL cannot be read: this node's SECRET_KEY is not the one it was saved "
                            "with (every node needs the same); enter the URL again")
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme == LOG_SCHEME:
        log_channel.warning("%s\n%s", message.title, message.body)
    elif scheme.startswith(SIGNED_PREFIX):
        _post_signed(url[len(SIGNED_PREFIX):], message, signing_secret)
    else:
        _send_apprise(url, message)


def _post_signed(url: str, message: Message, secret: str) -> None:
    body = json.dumps({"id": message.notification_id, "kind": message.kind, "title": message.title,
                       "body": message.body}, ensure_ascii=False).encode()
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    headers = {"Content-Type": "application/json", HEADER_NOTIFICATION: message.notification_id,
               **signature_headers(secret, "POST", target, body)}
    try:
        response = requests.post(url, data=body, headers=headers, timeout=WEBHOOK_TIMEOUT_SECONDS,
                                 allow_redirects=False)
    except requests.RequestException as exc:
        raise DeliveryError(scrub(f"unreachable: {type(exc).__name__}: {exc}", url)) from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"answered HTTP {response.status_code}")


def _quiet_apprise() -> None:
    """Apprise's records stay out of the scheduler's log: they can name hosts, users and recipients. Set on
    every use, since a logging reconfiguration (Django's, a test's) may have reset it."""
    _apprise_log.propagate = False


def _send_apprise(url: str, message: Message) -> None:
    _quiet_apprise()
    notifier = apprise.Apprise()
    if not notifier.add(url):
        raise DeliveryError("Apprise cannot use this URL")
    with apprise.LogCapture(level=logging.WARNING) as captured:
        delivered = notifier.notify(title=message.title, body=message.body)
    if not delivered:
        details = " ".join(captured.getvalue().split())
        raise DeliveryError(scrub(f"Apprise could not send it: {details}" if details else
                                  "Apprise could not send it", url))


def scrub(text: str, url: str) -> str:
    """``text`` without the URL or any of its parts that could be a credential (user, password, host, path
    segments, query values), cut to MAX_ERROR_CHARS."""
    parts = urlsplit(url)
    pieces = {url, parts.netloc, parts.username or "", parts.password or "", parts.hostname or "", parts.query}
    pieces.update(segment for segment in parts.path.split("/"))
    pieces.update(value for item in parts.query.split("&") for value in item.split("="))
    for piece in sorted(pieces | {unquote(piece) for piece in pieces}, key=len, reverse=True):
        if len(piece) >= 4:
            text = text.replace(piece, MASK)
    return text[:MAX_ERROR_CHARS]
