"""Alert channels: Slack, email and PagerDuty, behind the Channel interface."""

from __future__ import annotations

import os
from collections.abc import Mapping

from mendline.schemas.alert import (
    Channel,
    EmailReceiver,
    PagerDutyReceiver,
    Receiver,
    SlackReceiver,
)
from mendline.schemas.errors import ConfigError
from mendline.sinks.channels._email import EmailChannel
from mendline.sinks.channels._pagerduty import PagerDutyChannel
from mendline.sinks.channels._slack import SlackChannel

__all__ = ["EmailChannel", "PagerDutyChannel", "SlackChannel", "make_channel"]


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
    raise ConfigError(f"receiver {name!r}: unknown type {type(receiver).__name__}")
