"""What can be told wrong of a receiver without reaching its server: a URL that is not one, a
PagerDuty routing key of the wrong length, a bot with no channel, half a login. ``mendline
routes check`` and ``mendline doctor`` both ask here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import urlsplit

from mendline.schemas.alert import (
    EmailReceiver,
    PagerDutyReceiver,
    Receiver,
    SlackReceiver,
    WebhookReceiver,
)

__all__ = ["ReceiverProblem", "receiver_problems"]


class ReceiverProblem(NamedTuple):
    """What is wrong with a receiver, and what to do about it."""

    problem: str
    fix: str


def _is_url(text: str) -> bool:
    parts = urlsplit(text.strip())
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def receiver_problems(
    name: str, receiver: Receiver, environ: Mapping[str, str]
) -> list[ReceiverProblem]:
    """The problems of receiver ``name`` that need no network to see, with the secrets its
    variables hold in ``environ`` (a variable that is unset is not a problem here: the
    receiver is disabled, or refused in production, elsewhere). Never says a secret."""
    found: list[ReceiverProblem] = []
    if isinstance(receiver, SlackReceiver):
        url_env = receiver.webhook_url_env
        if receiver.bot_token_env is not None:
            if not receiver.channel:
                found.append(
                    ReceiverProblem(
                        "slack bot: no channel to post to",
                        'add channel = "#alerts" (a name or an id) to the receiver',
                    )
                )
        elif url_env is None:
            found.append(
                ReceiverProblem(
                    "slack: neither webhook_url_env nor bot_token_env is set",
                    "name the variable that holds the webhook URL: webhook_url_env in"
                    f" [receivers.{name}]",
                )
            )
        elif environ.get(url_env) and not _is_url(environ[url_env]):
            found.append(
                ReceiverProblem(
                    f"slack webhook: {url_env} does not hold a URL",
                    f"set {url_env} to the incoming-webhook URL Slack gave"
                    " (https://hooks.slack.com/services/...)",
                )
            )
    elif isinstance(receiver, EmailReceiver):
        if (receiver.username_env is None) != (receiver.password_env is None):
            found.append(
                ReceiverProblem(
                    "email: a login needs both username_env and password_env",
                    "name both variables in the receiver, or neither",
                )
            )
    elif isinstance(receiver, WebhookReceiver):
        where = receiver.url_env or "url"
        url = environ.get(receiver.url_env) if receiver.url_env else receiver.url
        if url and not _is_url(url):
            found.append(
                ReceiverProblem(
                    f"webhook: {where} does not hold an http(s) URL",
                    f"set {where} to the endpoint's URL",
                )
            )
    elif isinstance(receiver, PagerDutyReceiver):
        key = environ.get(receiver.routing_key_env, "").strip()
        if key and len(key) != 32:
            found.append(
                ReceiverProblem(
                    f"pagerduty: the routing key in {receiver.routing_key_env} is {len(key)}"
                    " characters, not 32",
                    f"set {receiver.routing_key_env} to the Integration Key of an Events API"
                    " v2 integration",
                )
            )
        if not _is_url(receiver.events_url):
            found.append(
                ReceiverProblem(
                    f"pagerduty: events_url {receiver.events_url} is not an http(s) URL",
                    "leave events_url out for https://events.pagerduty.com/v2/enqueue",
                )
            )
    return found
