"""Loopback stand-ins for the alert channels' far ends, for the tests.

``FakeSlack`` is an incoming webhook and the Web API's chat.postMessage, chat.update and
auth.test; ``FakePagerDuty`` is the Events API v2; ``smtp_server`` is an aiosmtpd server, with
STARTTLS (a self-signed certificate from ``openssl``) and AUTH when asked. The HTTP ones
record every request with its arrival time and answer from a script: 429 with Retry-After,
500, a Slack error, or slowly; with ``jitter``, each answer comes after a random wait (answers
out of order), and ``most_at_once`` counts the requests they held at once. ``FakeWebhook`` is a
generic webhook endpoint that checks mendline's signature. Only 127.0.0.1, ever.
"""

from __future__ import annotations

import email
import email.policy
import hmac
import json
import random
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.loopback import HOST, LoopbackHTTPServer, QuietHandler


@dataclass
class Reply:
    """One scripted answer, instead of the server's normal one."""

    status: int = 200
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content_type: str = "application/json"

    @classmethod
    def rate_limited(cls, retry_after: int | str, body: str = "") -> Reply:
        """A 429 with Retry-After (Slack's Web API says ``ratelimited`` in its body)."""
        return cls(429, body, {"Retry-After": str(retry_after)}, content_type="text/plain")

    @classmethod
    def error(cls, status: int, body: str = "", **headers: str) -> Reply:
        """Any status, with a text body."""
        headers = {k.replace("_", "-"): v for k, v in headers.items()}
        return cls(status, body, headers, content_type="text/plain")

    @classmethod
    def slack_error(cls, error: str, status: int = 200) -> Reply:
        """The Web API refusing: ``{"ok": false, "error": ...}``."""
        return cls(status, json.dumps({"ok": False, "error": error}))


def send_reply(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
    """Answer ``handler``'s request with ``reply``, after its delay."""
    time.sleep(reply.delay)
    try:
        payload = reply.body.encode()
        handler.send_response(reply.status)
        handler.send_header("Content-Type", reply.content_type)
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up (a timeout): fine


@dataclass
class Request:
    """One request as received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]  # the JSON object, or the form's fields
    at: float  # time.monotonic() on arrival
    raw: bytes = b""  # the body as received


class _Server:
    """A ThreadingHTTPServer on loopback that records POSTs and answers from ``script``
    first, then with ``answer`` (the service's normal answer)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.script: list[Reply] = []
        self.jitter = 0.0  # each answer waits up to this many seconds more, at random
        self.most_at_once = 0  # the most requests being answered at the same time
        self._at_once = 0
        self._lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                request = Request(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    _parse(self.headers.get("Content-Type", ""), raw),
                    time.monotonic(),
                    raw,
                )
                with server._lock:
                    server.requests.append(request)
                    reply = server.script.pop(0) if server.script else server.answer(request)
                    reply = replace(reply, delay=reply.delay + random.uniform(0, server.jitter))
                    server._at_once += 1
                    server.most_at_once = max(server.most_at_once, server._at_once)
                try:
                    send_reply(self, reply)
                finally:
                    with server._lock:
                        server._at_once -= 1

        self._http = LoopbackHTTPServer(Handler)

    @property
    def base(self) -> str:
        return self._http.base

    def answer(self, request: Request) -> Reply:
        raise NotImplementedError

    def start(self) -> _Server:
        self._http.start()
        return self

    def close(self) -> None:
        self._http.close()

    def bodies(self) -> list[dict[str, Any]]:
        """The bodies received, in order."""
        return [r.body for r in self.requests]


def _parse(content_type: str, raw: bytes) -> dict[str, Any]:
    text = raw.decode("utf-8", "replace")
    if content_type.startswith("application/x-www-form-urlencoded"):
        fields: dict[str, Any] = dict(parse_qsl(text))
        for name in ("blocks", "attachments"):  # slack-sdk sends these as JSON in a form
            if isinstance(fields.get(name), str):
                fields[name] = json.loads(fields[name])
        return fields
    try:
        body = json.loads(text)
    except ValueError:
        return {"_raw": text}
    return body if isinstance(body, dict) else {"_raw": body}


class FakeSlack(_Server):
    """Incoming webhooks under ``/services/...`` (answer ``ok``) and the Web API under
    ``/api/`` (chat.postMessage answers ``{"ok": true, "channel": "C123", "ts": ...}`` with
    an increasing ts; auth.test says who the bot is). A bot token other than ``token`` is
    refused with ``invalid_auth``."""

    def __init__(self, token: str = "xoxb-test-token") -> None:
        super().__init__()
        self.token = token
        self._ts = 0

    @property
    def api_url(self) -> str:
        """The Web API's base URL, as a SlackReceiver's ``api_url``."""
        return f"{self.base}/api/"

    def webhook_url(self, name: str = "alerts") -> str:
        """An incoming-webhook URL; each name stands for its own Slack channel."""
        return f"{self.base}/services/T000/B{name}/secret"

    def calls(self, method: str) -> list[dict[str, Any]]:
        """The bodies of the Web API calls of ``method`` (``chat.update``...)."""
        return [r.body for r in self.requests if r.path == f"/api/{method}"]

    def answer(self, request: Request) -> Reply:
        if request.path.startswith("/services/"):
            return Reply(body="ok", content_type="text/plain")
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Reply.slack_error("invalid_auth")
        body = request.body
        if request.path == "/api/chat.postMessage":
            self._ts += 1
            channel = str(body.get("channel", ""))
            return self._ok(
                channel="C123" if channel.startswith("#") else channel,
                ts=f"{1700000000 + self._ts}.{self._ts:06d}",
                message={"text": body.get("text"), "thread_ts": body.get("thread_ts")},
            )
        if request.path == "/api/chat.update":
            return self._ok(channel=body.get("channel"), ts=body.get("ts"), text=body.get("text"))
        if request.path == "/api/auth.test":
            return self._ok(team="Test Team", team_id="T000", user="mendline", user_id="U000")
        return Reply.slack_error("unknown_method", status=404)

    @staticmethod
    def _ok(**fields: Any) -> Reply:
        return Reply(body=json.dumps({"ok": True, **fields}))


class FakePagerDuty(_Server):
    """PagerDuty's ``POST /v2/enqueue``: 202 with the dedup_key, or 400 for an event
    without a routing key or with an unknown action."""

    @property
    def events_url(self) -> str:
        """The URL for a PagerDutyReceiver's ``events_url``."""
        return f"{self.base}/v2/enqueue"

    def answer(self, request: Request) -> Reply:
        body = request.body
        if not body.get("routing_key") or body.get("event_action") not in (
            "trigger",
            "acknowledge",
            "resolve",
        ):
            invalid = {"status": "invalid event", "message": "Event object is invalid"}
            return Reply(400, json.dumps(invalid))
        accepted = {
            "status": "success",
            "message": "Event processed",
            "dedup_key": body.get("dedup_key"),
        }
        return Reply(202, json.dumps(accepted))


class FakeWebhook(_Server):
    """A webhook endpoint that checks mendline's signature as a receiver would: the HMAC-SHA256
    with ``secret`` of ``<X-Mendline-Timestamp>.<raw body>``, compared in constant time, and
    a timestamp within five minutes. 204 when it holds (or no secret is set), 401 otherwise;
    ``verified`` lists the bodies it accepted."""

    def __init__(self, secret: str | None = None) -> None:
        super().__init__()
        self.secret = secret
        self.verified: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        """The endpoint, as a WebhookReceiver's ``url``."""
        return f"{self.base}/hooks/mendline"

    def answer(self, request: Request) -> Reply:
        if self.secret is not None:
            stamp = request.headers.get("x-mendline-timestamp", "")
            given = request.headers.get("x-mendline-signature", "")
            mac = hmac.new(self.secret.encode(), stamp.encode() + b"." + request.raw, "sha256")
            fresh = stamp.isdigit() and abs(time.time() - int(stamp)) < 300
            if not (fresh and hmac.compare_digest(given, f"sha256={mac.hexdigest()}")):
                return Reply.error(401, "bad signature")
        self.verified.append(request.body)
        return Reply(204, "")


@contextmanager
def fake_webhook(secret: str | None = None) -> Iterator[FakeWebhook]:
    """A running FakeWebhook, closed afterwards."""
    server = FakeWebhook(secret)
    server.start()
    try:
        yield server
    finally:
        server.close()


@contextmanager
def fake_slack(token: str = "xoxb-test-token") -> Iterator[FakeSlack]:
    """A running FakeSlack, closed afterwards."""
    server = FakeSlack(token)
    server.start()
    try:
        yield server
    finally:
        server.close()


@contextmanager
def fake_pagerduty() -> Iterator[FakePagerDuty]:
    """A running FakePagerDuty, closed afterwards."""
    server = FakePagerDuty()
    server.start()
    try:
        yield server
    finally:
        server.close()


# -- SMTP ----------------------------------------------------------------------------------


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1, made with openssl: ``(cert, key)``."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", f"/CN={HOST}"),
            *("-addext", f"subjectAltName=IP:{HOST}"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@dataclass
class Received:
    """One message the SMTP server accepted."""

    message: EmailMessage
    mail_from: str
    rcpt_tos: list[str]
    login: str | None  # who authenticated, if anyone
    tls: bool  # whether it came over TLS (STARTTLS or implicit)


class SMTPRecorder:
    """The aiosmtpd handler: parses and records each message, or answers DATA from
    ``script`` (``"451 4.3.0 try later"``, ``"554 5.7.1 rejected"``)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: list[str] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.script:
            return self.script.pop(0)
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login.decode() if session.auth_data else None
        self.received.append(
            Received(
                message,
                str(envelope.mail_from),
                list(envelope.rcpt_tos),
                login,
                server.transport is not None
                and server.transport.get_extra_info("ssl_object") is not None,
            )
        )
        return "250 Message accepted for delivery"


@dataclass
class FakeSMTP:
    """A running SMTP server: its port, its recorder, and the CA file that trusts it."""

    port: int
    recorder: SMTPRecorder
    cafile: Path | None

    def client_context(self) -> ssl.SSLContext:
        """A client SSL context that trusts this server's certificate, and only it."""
        return ssl.create_default_context(cafile=str(self.cafile))


def _free_port() -> int:
    # aiosmtpd's Controller checks it started by connecting to its port, so it needs one.
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@contextmanager
def smtp_server(
    *,
    cert: tuple[Path, Path] | None = None,
    implicit_tls: bool = False,
    login: tuple[str, str] | None = None,
) -> Iterator[FakeSMTP]:
    """An aiosmtpd server on loopback. With ``cert``, STARTTLS is required (or, with
    ``implicit_tls``, TLS from the first byte); with ``login``, AUTH is required (over TLS
    when there is a certificate)."""
    context = None
    if cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*map(str, cert))

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = login is not None and isinstance(data, LoginPassword)
        ok = ok and (data.login.decode(), data.password.decode()) == login
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    recorder = SMTPRecorder()
    options: dict[str, Any] = {}
    if context is not None and not implicit_tls:
        options.update(tls_context=context, require_starttls=True)
    if login is not None:
        options.update(
            authenticator=authenticate, auth_required=True, auth_require_tls=cert is not None
        )
    controller = Controller(
        recorder,
        hostname=HOST,
        port=_free_port(),
        ssl_context=context if implicit_tls else None,
        **options,
    )
    controller.start()
    try:
        yield FakeSMTP(controller.port, recorder, cert[0] if cert else None)
    finally:
        controller.stop()
