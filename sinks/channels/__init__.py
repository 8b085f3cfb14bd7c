"""Alert channels: Slack, email and PagerDuty, behind the Channel interface."""

from __future__ import annotations

import os
from collections.abc import Mapping

from mendline.schemas.alert import (
    Channel,
    EmailReceiver,
    LogReceiver,
    PagerDutyReceiver,
    Receiver,
    SlackReceiver,
    WebhookReceiver,
)
from mendline.schemas.errors import ConfigError
from mendline.sinks.channels._email import EmailChannel
from mendline.sinks.channels._pagerduty import PagerDutyChannel
from mendline.sinks.channels._slack import SlackChannel
from mendline.sinks.channels._webhook import LogChannel, WebhookChannel, sign, webhook_payload

__all__ = [
    "EmailChannel",
    "LogChannel",
    "PagerDutyChannel",
    "SlackChannel",
    "WebhookChannel",
    "make_channel",
    "sign",
    "webhook_payload",
]


def make_channel(name: str, receiver: Receiver, environ: Mapping[str, str] = os.environ) -> Channel:
    """The channel for receiver ``name``, its secrets read from ``environ``.

    Raises ConfigError naming the receiver and the variable when a secret it names is unset
    or empty, or when a Slack receiver has neither a webhook nor a bot token and a channel.
    A Slack receiver with both uses the bot token (it can update and thread).
    """

    def secret(variable: str | None) -> str | None:
        if variable is None:
            return None
        value = environ.get(variable, "")
        if not value:
            raise ConfigError(f"receiver {name!r}: the environment variable {variable} is not set")
        return value

    if isinstance(receiver, SlackReceiver):
        if receiver.bot_token_env is not None:
            return SlackChannel(receiver, bot_token=secret(receiver.bot_token_env), name=name)
        return SlackChannel(receiver, webhook_url=secret(receiver.webhook_url_env), name=name)
    if isinstance(receiver, EmailReceiver):
        return EmailChannel(
            receiver,
            username=secret(receiver.username_env),
            password=secret(receiver.password_env),
            name=name,
        )
    if isinstance(receiver, PagerDutyReceiver):
        return PagerDutyChannel(
            receiver, routing_key=secret(receiver.routing_key_env) or "", name=name
        )
    if isinstance(receiver, WebhookReceiver):
        url = receiver.url if receiver.url_env is None else secret(receiver.url_env)
        if not url:
            raise ConfigError(f"receiver {name!r}: a webhook needs url or url_env")
        return WebhookChannel(
            receiver,
            url=url,
            secret=secret(receiver.secret_env),
            secret_headers={
                header: secret(variable) or "" for header, variable in receiver.headers_env.items()
            },
            name=name,
        )
    if isinstance(receiver, LogReceiver):
        return LogChannel(receiver, name=name)
    raise ConfigError(f"receiver {name!r}: unknown type {type(receiver).__name__}")
