"""Email over SMTP: one multipart/alternative message (plain text and HTML) a notification."""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib

from mendline.schemas.alert import ChannelError, EmailReceiver, Notification
from mendline.schemas.errors import ConfigError
from mendline.sinks.channels._render import render_html, render_text, subject

__all__ = ["EmailChannel"]

log = logging.getLogger("mendline.sinks")

_MESSAGE_ID = re.compile(r"<[^<>\s]+>")


class EmailChannel:
    """Sends to one email receiver over SMTP (STARTTLS, implicit TLS, or plain).

    The reference is ``{"message_id"}``; an ``update`` or ``repeat`` is sent as a reply to
    the previous message (In-Reply-To and References) so that mail clients thread it, and
    its reference also carries those ``references``. ``ssl_context`` replaces the system's
    trust store, for a server with a private CA.
    """

    def __init__(
        self,
        receiver: EmailReceiver,
        *,
        username: str | None = None,
        password: str | None = None,
        name: str = "email",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if (username is None) != (password is None):
            raise ConfigError(f"receiver {name!r}: SMTP login needs a username and a password")
        self.name = name
        self._receiver = receiver
        self._username = username
        self._password = password
        self._ssl_context = ssl_context
        _, _, domain = receiver.sender.rpartition("@")
        self._domain = domain.strip("> ") or "mendline.invalid"
        self._closed = False

    async def send(self, notification: Notification) -> dict[str, str]:
        """Send ``notification`` as one email; raise ChannelError if the server refuses."""
        if self._closed:
            raise RuntimeError(f"the email channel {self.name!r} is closed")
        message, reference = self._compose(notification)
        receiver = self._receiver
        try:
            async with asyncio.timeout(receiver.timeout):
                refused, _ = await aiosmtplib.send(
                    message,
                    hostname=receiver.smtp_host,
                    port=receiver.smtp_port,
                    use_tls=receiver.security == "tls",
                    start_tls=receiver.security == "starttls",
                    tls_context=self._ssl_context,
                    username=self._username,
                    password=self._password,
                    timeout=receiver.timeout,
                )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise _smtp_error(exc) from exc
        if refused:  # some recipients took it: sent, and said so
            log.warning(
                "mendline: receiver %s: the SMTP server refused %s",
                self.name,
                ", ".join(f"{to} ({r.code})" for to, r in refused.items()),
            )
        return reference

    async def aclose(self) -> None:
        """Refuse further sends (each send has its own SMTP connection); idempotent."""
        self._closed = True

    def _compose(self, notification: Notification) -> tuple[EmailMessage, dict[str, str]]:
        message = EmailMessage()
        message["Subject"] = subject(notification)
        message["From"] = self._receiver.sender
        message["To"] = ", ".join(self._receiver.to)
        message["Date"] = formatdate(usegmt=True)
        message_id = make_msgid("mendline", domain=self._domain)
        message["Message-ID"] = message_id
        reference = {"message_id": message_id}
        previous = (notification.previous or {}).get("message_id", "")
        if notification.mode != "new" and _MESSAGE_ID.fullmatch(previous):
            earlier = (notification.previous or {}).get("references", "").split()
            chain = [m for m in earlier if _MESSAGE_ID.fullmatch(m) and m != previous]
            reference["references"] = " ".join([*chain, previous])
            message["In-Reply-To"] = previous
            message["References"] = reference["references"]
        message.set_content(render_text(notification))
        message.add_alternative(render_html(notification), subtype="html")
        return message, reference


def _smtp_error(exc: aiosmtplib.SMTPException | OSError) -> ChannelError:
    """4xx replies and lost connections may pass later; 5xx replies will not."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        exc = exc.recipients[0]
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return ChannelError(
            f"the SMTP server answered {exc.code}: {exc.message}",
            code=f"smtp_{exc.code}",
            retriable=400 <= exc.code < 500,
            status=exc.code,
        )
    if isinstance(exc, TimeoutError):
        return ChannelError(
            "the SMTP server did not answer in time", code="timeout", retriable=True
        )
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return ChannelError(
            f"the SMTP server does not support what the receiver needs: {exc}",
            code="config",
            retriable=False,
        )
    if isinstance(exc, ssl.SSLCertVerificationError) or isinstance(
        exc.__cause__, ssl.SSLCertVerificationError
    ):
        return ChannelError(
            f"the SMTP server's certificate is not trusted: {exc}", code="config", retriable=False
        )
    if isinstance(exc, OSError):
        return ChannelError(
            f"cannot reach the SMTP server: {exc}", code="unreachable", retriable=True
        )
    return ChannelError(f"SMTP failed: {exc}", code="smtp_error", retriable=False)
