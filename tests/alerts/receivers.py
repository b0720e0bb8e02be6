"""Real receivers for alert tests, in the test process: an SMTP server (aiosmtpd) and an HTTP webhook
receiver that records each request (its headers and JSON body)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.processes import free_port


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    subject: str
    body: str


class _MailHandler:
    def __init__(self, inbox: list[Mail]) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        message = message_from_bytes(envelope.content, policy=default_policy)
        part = message.get_body(preferencelist=("plain", "html"))
        self.inbox.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), str(message["subject"]),
                               part.get_content() if part is not None else ""))
        return "250 OK"


class SmtpReceiver:
    """``inbox`` holds every message accepted; ``url`` is the Apprise URL that sends here."""

    def __init__(self) -> None:
        self.inbox: list[Mail] = []
        self.port = free_port()
        self.logins: list[bytes] = []
        self.controller = Controller(_MailHandler(self.inbox), hostname="127.0.0.1", port=self.port,
                                     authenticator=self._login, auth_require_tls=False)

    def _login(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        self.logins.append(auth_data.password)
        return AuthResult(success=auth_data.password == b"smtp-pass-s3cret")

    @property
    def url(self) -> str:
        return (f"mailto://ops:smtp-pass-s3cret@127.0.0.1:{self.port}?to=ops@example.com&from=scheduler@example.com"
                "&mode=insecure")

    def start(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


@dataclass
class Hook:
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.time)

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Answers ``status`` (200 by default) to every POST and records it; ``hold`` (an Event) keeps each
    request waiting until it is set."""

    received: list[Hook] = field(default_factory=list)
    status: int = 200
    hold: threading.Event | None = None

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append(Hook(self.path, dict(self.headers.items()), body))
                if receiver.hold is not None:
                    receiver.hold.wait(30)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def url(self, path: str = "/hooks/alerts") -> str:
        return f"signed+http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
