"""The checks of ``mendline doctor`` for the alert receivers: Slack, email, PagerDuty, webhook
and log.

None sends anything people would see: Slack's auth.test, an SMTP login without mail, a TCP
connection to PagerDuty; a Slack webhook is not posted to.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import ssl
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from mendline.cli._doctor_checks import Verdict, fail, ok
from mendline.schemas.alert import (
    EmailReceiver,
    LogReceiver,
    PagerDutyReceiver,
    Receiver,
    SlackReceiver,
    WebhookReceiver,
    secret_variables,
)
from mendline.sinks.routing import receiver_problems

__all__ = ["check_receiver"]


async def check_receiver(
    name: str, receiver: Receiver, environ: Mapping[str, str], timeout: float
) -> Verdict:
    """The receiver's secrets are set and its server answers; nothing is sent."""
    missing = [variable for _, variable in secret_variables(receiver) if not environ.get(variable)]
    if missing:
        return Verdict(
            "skip",
            f"{receiver.type}: disabled, not checked: {' and '.join(missing)} unset; its alerts"
            " are recorded as suppressed (MENDLINE_PROFILE=production refuses to start)",
        )
    problems = receiver_problems(name, receiver, environ)
    if problems:
        return fail(*problems[0])
    if isinstance(receiver, SlackReceiver):
        if receiver.bot_token_env is not None:
            return await _slack_bot(receiver, environ[receiver.bot_token_env], timeout)
        # The URL is the credential: where it points is no one's business in a report that
        # gets pasted into tickets, and a webhook cannot be checked without posting.
        return ok(
            f"slack webhook: {receiver.webhook_url_env} holds a URL; not sent to; a webhook"
            " cannot be checked without posting"
        )
    if isinstance(receiver, EmailReceiver):
        return await _email(receiver, environ, timeout)
    if isinstance(receiver, WebhookReceiver):
        signed = "signed with " + receiver.secret_env if receiver.secret_env else "not signed"
        # The URL may carry a token: not even its host is said.
        return ok(f"webhook: {receiver.url_env or 'url'} holds a URL, {signed}; not posted to")
    if isinstance(receiver, LogReceiver):
        return _log(receiver)
    return await _pagerduty(receiver, timeout)


def _log(receiver: LogReceiver) -> Verdict:
    if receiver.path is None:
        return ok("log: one JSON line per alert to the alert worker's standard output")
    path = Path(receiver.path)
    folder = path.parent if not path.exists() else path
    if not os.access(folder, os.W_OK):
        return fail(
            f"log: {receiver.path} cannot be written",
            "point path at a file in a folder the alert worker may write to",
        )
    return ok(f"log: one JSON line per alert appended to {receiver.path}")


async def _slack_bot(receiver: SlackReceiver, token: str, timeout: float) -> Verdict:
    import aiohttp
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    variable = receiver.bot_token_env
    if not receiver.channel:
        return fail(
            "slack bot: no channel to post to",
            'add channel = "#alerts" (a name or an id) to the receiver',
        )
    host = urlsplit(receiver.api_url).netloc or receiver.api_url
    client = AsyncWebClient(
        token=token, base_url=receiver.api_url, timeout=math.ceil(timeout), retry_handlers=[]
    )
    try:
        async with asyncio.timeout(timeout):
            answer = await client.auth_test()
    except SlackApiError as exc:
        data = getattr(exc.response, "data", None)
        error = data.get("error") if isinstance(data, dict) else None
        status = getattr(exc.response, "status_code", None) or getattr(exc.response, "status", "")
        if error in (
            "invalid_auth",
            "not_authed",
            "account_inactive",
            "token_revoked",
            "token_expired",
        ):
            return fail(
                f"slack bot: auth.test at {host} refused the token in {variable} ({error})",
                f"set {variable} to the bot token (xoxb-...) of the Slack app in the workspace",
            )
        return fail(
            f"slack bot: auth.test at {host} answered HTTP {status}: {error or 'not Slack JSON'}",
            "check the receiver's api_url (default https://slack.com/api/)",
        )
    except TimeoutError:
        return fail(
            f"slack bot: {host} did not answer within {timeout:g} s",
            "check the receiver's api_url and the network to Slack (a proxy?)",
        )
    except aiohttp.ClientError as exc:
        return fail(
            f"slack bot: cannot reach {host} ({type(exc).__name__})",
            "check the receiver's api_url and the network to Slack (a proxy?)",
        )
    who = answer.get("user") or answer.get("user_id") or "?"
    team = answer.get("team") or answer.get("team_id") or "?"
    return ok(
        f"slack bot: auth.test ok at {host}, bot {who} in {team}, posts to {receiver.channel}"
    )


async def _email(receiver: EmailReceiver, environ: Mapping[str, str], timeout: float) -> Verdict:
    import aiosmtplib

    user_var, password_var = receiver.username_env, receiver.password_env
    where = f"{receiver.smtp_host}:{receiver.smtp_port}"
    smtp = aiosmtplib.SMTP(
        hostname=receiver.smtp_host,
        port=receiver.smtp_port,
        use_tls=receiver.security == "tls",
        start_tls=receiver.security == "starttls",
        timeout=timeout,
    )
    reach = f"check smtp_host and smtp_port ({where}) and that the SMTP server is up"
    try:
        async with asyncio.timeout(timeout):
            await smtp.connect()
            await smtp.ehlo()
            if user_var is not None and password_var is not None:
                await smtp.login(environ[user_var], environ[password_var])
            await smtp.quit()
    except aiosmtplib.SMTPAuthenticationError as exc:
        return fail(
            f"email: {where} refused the login ({exc.code} {exc.message})",
            f"check {user_var} and {password_var}",
        )
    except (aiosmtplib.SMTPTimeoutError, TimeoutError):
        return fail(
            f"email: {where} did not answer within {timeout:g} s",
            f'{reach}; a port that speaks TLS from the first byte (465) needs security = "tls"',
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        return _smtp_failure(exc, where, reach)
    finally:
        if smtp.is_connected:
            smtp.close()
    steps = {"starttls": ["EHLO", "STARTTLS"], "tls": ["TLS", "EHLO"], "none": ["EHLO"]}
    done = steps[receiver.security] + (["login"] if user_var else [])
    said = ", ".join(done[:-1]) + f" and {done[-1]}" if len(done) > 1 else done[0]
    return ok(f"email: {where}: {said} ok; no mail sent")


def _smtp_failure(exc: Exception, where: str, reach: str) -> Verdict:
    import aiosmtplib

    tls_error = exc if isinstance(exc, ssl.SSLError) else exc.__cause__
    if isinstance(tls_error, ssl.SSLCertVerificationError):
        return fail(
            f"email: the certificate of {where} is not trusted: {tls_error.verify_message}",
            "add the CA that signed it to this system's trust store, or fix smtp_host to the"
            " name the certificate is for",
        )
    if isinstance(tls_error, ssl.SSLError):
        return fail(
            f"email: TLS with {where} failed: {tls_error}",
            'security = "tls" is for a port that speaks TLS from the first byte (465); use'
            ' "starttls" (587) or "none" for the others',
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return fail(f"email: {where} answered {exc.code} {exc.message}", reach)
    if isinstance(exc, OSError):  # SMTPConnectError too: the OSError under it says why
        cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
        return fail(f"email: cannot reach the SMTP server at {where}: {cause}", reach)
    return fail(  # the server lacks what the receiver asks for: STARTTLS, AUTH
        f"email: {where}: {exc}",
        "set the receiver's security to what the server offers: starttls (usually port 587),"
        " tls (465) or none; a login usually needs one of the first two",
    )


async def _pagerduty(receiver: PagerDutyReceiver, timeout: float) -> Verdict:
    parts = urlsplit(receiver.events_url)
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    reach = "check the receiver's events_url and the network to PagerDuty (a proxy, a firewall?)"
    try:
        async with asyncio.timeout(timeout):
            await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return fail(f"pagerduty: {host} does not resolve: {exc.strerror}", reach)
    except TimeoutError:
        return fail(f"pagerduty: {host} did not resolve within {timeout:g} s", reach)
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            await writer.wait_closed()
    except TimeoutError:
        return fail(f"pagerduty: {host}:{port} did not accept within {timeout:g} s", reach)
    except OSError as exc:
        return fail(f"pagerduty: {host}:{port} refuses connections: {exc.strerror or exc}", reach)
    return ok(
        f"pagerduty: routing key set (32 characters), {host}:{port} accepts connections;"
        " no event sent"
    )
