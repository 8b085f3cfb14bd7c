"""Where a credential would cross the network unencrypted: a pure check of the routing table,
the environment and the LLM base URL, for ``routes check`` and ``doctor``."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from mendline.schemas.alert import (
    EmailReceiver,
    PagerDutyReceiver,
    SlackReceiver,
    WebhookReceiver,
)
from mendline.sinks.routing._routes import RoutingTable

__all__ = ["is_loopback_host", "plaintext_warnings"]

_FIX = "use https://, or a loopback host"


def is_loopback_host(host: str | None) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1: traffic that never leaves this machine."""
    if not host:
        return False
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):  # RFC 6761: always loopback
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _plain_http_host(url: str) -> str | None:
    """The host of an ``http://`` URL that leaves this machine; None for anything else."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:  # a malformed URL is the loader's or the channel's to report
        return None
    if parts.scheme.lower() != "http" or is_loopback_host(host):
        return None
    return host or "?"


def plaintext_warnings(
    table: RoutingTable, environ: Mapping[str, str], llm_base_url: str | None
) -> list[str]:
    """One line per place a credential would go over plaintext, naming the receiver and field.

    An ``http://`` URL to a host other than loopback (Slack api_url, PagerDuty events_url,
    the Slack webhook URL in its variable, the LLM base URL), and SMTP with ``security =
    "none"`` to such a host when a login is configured, and a webhook receiver's URL (``url``
    or the one in ``url_env``) when it has ``url_env``, ``secret_env`` or ``headers_env``.
    Plain SMTP without a login is not warned: no credential crosses, and a relay on port 25
    is a usual, deliberate setup. A webhook URL may be a secret: its variable is named, never
    the URL or its host.
    """
    warnings: list[str] = []
    for name, receiver in table.receivers.items():
        where = f'receiver "{name}" ({receiver.type})'
        if isinstance(receiver, SlackReceiver):
            if host := _plain_http_host(receiver.api_url):
                warnings.append(
                    f"{where}: api_url is http:// to {host}: the bot token would go"
                    f" unencrypted; {_FIX}"
                )
            variable = receiver.webhook_url_env
            if variable and _plain_http_host(environ.get(variable, "")):
                warnings.append(
                    f"{where}: {variable} (webhook_url_env) holds an http:// URL to a host"
                    " that is not loopback: the webhook, itself a secret, would go unencrypted;"
                    " use the https:// URL Slack gave"
                )
        elif isinstance(receiver, PagerDutyReceiver):
            if host := _plain_http_host(receiver.events_url):
                warnings.append(
                    f"{where}: events_url is http:// to {host}: the routing key would go"
                    f" unencrypted; {_FIX}"
                )
        elif isinstance(receiver, WebhookReceiver):
            warnings += _webhook_warnings(where, receiver, environ)
        elif isinstance(receiver, EmailReceiver):
            login = receiver.username_env is not None or receiver.password_env is not None
            if receiver.security == "none" and login and not is_loopback_host(receiver.smtp_host):
                warnings.append(
                    f'{where}: security = "none" to {receiver.smtp_host}: the SMTP login'
                    f" ({receiver.username_env}, {receiver.password_env}) would go unencrypted;"
                    ' use security = "starttls" (port 587) or "tls" (465)'
                )
    if llm_base_url and (host := _plain_http_host(llm_base_url)):
        warnings.append(
            f"llm_base_url is http:// to {host}: the LLM API key would go unencrypted; {_FIX}"
        )
    return warnings


def _webhook_warnings(
    where: str, receiver: WebhookReceiver, environ: Mapping[str, str]
) -> list[str]:
    """A webhook whose URL is plain http:// to a host that is not loopback, when what it
    sends holds a secret: the URL itself (``url_env``), header values (``headers_env``) or
    signed bodies a listener could replay (``secret_env``)."""
    url = environ.get(receiver.url_env, "") if receiver.url_env else receiver.url or ""
    if not _plain_http_host(url):
        return []
    crossing = [f"{receiver.url_env} (url_env, the URL itself)"] if receiver.url_env else []
    crossing += [f"{v} (headers_env, {h})" for h, v in receiver.headers_env.items()]
    if receiver.secret_env:
        crossing.append(f"the bodies signed with {receiver.secret_env} (secret_env)")
    if not crossing:
        return []
    which = receiver.url_env or "url"
    return [
        f"{where}: {which} is an http:// URL to a host that is not loopback: "
        + ", ".join(crossing)
        + " would go unencrypted; use https://"
    ]
