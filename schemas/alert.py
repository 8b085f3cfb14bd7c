"""Alerts: what is sent to people, the receivers it goes to, and the channel interface."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mendline.schemas.errors import ChannelError
from mendline.schemas.finding import IssueSummary, Risk

__all__ = [
    "ALERT_SEVERITIES",
    "ENDS_INCIDENT",
    "HEALTH_KINDS",
    "REMEDIATION_FAILED",
    "Alert",
    "AlertFinding",
    "AlertIssue",
    "AlertKind",
    "AlertSeverity",
    "Channel",
    "ChannelError",
    "EmailReceiver",
    "LogReceiver",
    "Notification",
    "PagerDutyReceiver",
    "Receiver",
    "SlackReceiver",
    "WebhookReceiver",
    "secret_variables",
    "severity_label",
]

AlertKind = Literal[
    "new_issue",
    "regression",
    "frequency",
    "resolved",
    "escalating",
    "health_down",
    "health_recovered",
    "health_flapping",
    "remediation_failed",
]
#: The kinds that end an incident: whoever was told hears it, what was not sent yet is
#: withdrawn, and PagerDuty resolves its incident.
ENDS_INCIDENT: frozenset[AlertKind] = frozenset({"resolved", "health_recovered"})
#: The kinds a health check's change of state makes (its issue has ``kind = 'health'``).
HEALTH_KINDS: frozenset[AlertKind] = frozenset(
    {"health_down", "health_recovered", "health_flapping"}
)
#: A runbook remediation did not help: it failed, ran out of time, or its check failed again
#: afterwards (``details``: the run, and its check). On the issue of what it was run for.
REMEDIATION_FAILED: AlertKind = "remediation_failed"
AlertSeverity = Literal["info", "warning", "error", "critical"]
#: Alert severities from least to most severe (PagerDuty's four); the index is the rank.
ALERT_SEVERITIES: tuple[AlertSeverity, ...] = ("info", "warning", "error", "critical")


def severity_label(severity: str) -> str:
    """An alert's severity as every message and table names it to people: ``ERROR``,
    ``CRITICAL`` (a finding's own severity, low to critical, is a judgement and keeps its
    word)."""
    return severity.upper()


#: The issue an alert is about, as stored when the notification is sent.
AlertIssue = IssueSummary


class AlertFinding(BaseModel):
    """The root cause, when the analysis has one by the time the notification is sent."""

    root_cause: str
    suggested_fix: str
    category: str
    severity: str
    confidence: float
    analyser: str
    model: str | None = None
    risks: list[Risk] = Field(
        default_factory=list,
        description="Finding.risks: what to check before acting on the fix (RISK_WORDS).",
    )


class Alert(BaseModel):
    """One issue's reason to tell someone: new, regressed, spiking, or resolved; a health
    check that went down, came back up or flaps (``details``: the check's evidence); or a
    remediation that did not help (``details``: the run)."""

    kind: AlertKind
    severity: AlertSeverity
    issue: AlertIssue
    finding: AlertFinding | None = None
    details: dict[str, Any] = Field(
        default_factory=dict, description='Kind-specific facts: {"events": 120, "minutes": 5}.'
    )
    link: str | None = Field(default=None, description="Where people see the issue.")
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="What routes and silences match (analyzers.policy.alert_labels).",
    )
    delivery_id: int | None = Field(
        default=None,
        description="The delivery (alert_deliveries.id) it is sent as, the same on every retry;"
        " none outside the alert worker.",
    )


class Notification(BaseModel):
    """What one channel sends at once: one alert, or a digest of several for one receiver.

    ``mode`` says how it relates to what was sent before about the same issue: ``new``, an
    ``update`` of that message (the finding came later: Slack chat.update with a bot token, a
    follow-up otherwise), or a ``repeat`` after repeat_interval (a thread reply with a bot
    token). ``previous`` is the reference the channel returned for that earlier message.
    """

    receiver: str
    alerts: list[Alert] = Field(min_length=1)
    mode: Literal["new", "update", "repeat"] = "new"
    previous: dict[str, str] | None = None

    @property
    def is_digest(self) -> bool:
        """Several issues in one message."""
        return len(self.alerts) > 1


class Channel(Protocol):
    """Sends notifications to one receiver; returns a reference to what it sent (Slack's
    channel and ts, an email's Message-ID, PagerDuty's dedup_key) for later updates. A
    channel may say how many sends the alert worker makes to it at once with a
    ``sends_at_once`` attribute (else MENDLINE_ALERT_CONCURRENCY)."""

    async def send(self, notification: Notification) -> dict[str, str]:
        """Deliver ``notification``, or raise ChannelError."""
        ...

    async def aclose(self) -> None:
        """Release connections; idempotent."""
        ...


class _Receiver(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackReceiver(_Receiver):
    """Slack through an incoming webhook, or a bot token and a channel (chat.postMessage,
    chat.update, thread replies). Secrets are named by environment variable, never given."""

    type: Literal["slack"]
    webhook_url_env: str | None = Field(
        default=None, description="Environment variable holding the incoming-webhook URL."
    )
    bot_token_env: str | None = Field(
        default=None, description="Environment variable holding a bot token (xoxb-...)."
    )
    channel: str | None = Field(default=None, description="Channel for the bot: #name or id.")
    api_url: str = Field(default="https://slack.com/api/", description="Slack Web API base URL.")


class EmailReceiver(_Receiver):
    """Email over SMTP (STARTTLS, TLS or plain), plain-text and HTML parts."""

    type: Literal["email"]
    smtp_host: str
    smtp_port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username_env: str | None = None
    password_env: str | None = None
    sender: str = Field(description="The From address.")
    to: list[str] = Field(min_length=1)
    digest: bool = Field(
        default=True, description="Several issues in one email rather than one each."
    )
    timeout: float = Field(default=30.0, gt=0)

    @field_validator("sender")
    @classmethod
    def _sender_is_an_address(cls, value: str) -> str:
        return _address(value)

    @field_validator("to")
    @classmethod
    def _to_are_addresses(cls, value: list[str]) -> list[str]:
        return [_address(address) for address in value]


# local@domain, or "Name <local@domain>"; a domain without a dot (localhost) is allowed.
_ADDRESS = re.compile(
    r"^(?:[^<>\r\n]*<)?([^@\s<>,;\"]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)>?$"
)


def _address(value: str) -> str:
    match = _ADDRESS.match(value.strip())
    if match is None or (value.strip().endswith(">") != ("<" in value)):
        raise ValueError(f"{value[:80]!r} is not an email address (name@example.com)")
    return value.strip()


class PagerDutyReceiver(_Receiver):
    """PagerDuty Events API v2: trigger and resolve, deduplicated per issue."""

    type: Literal["pagerduty"]
    routing_key_env: str = Field(description="Environment variable holding the routing key.")
    events_url: str = Field(default="https://events.pagerduty.com/v2/enqueue")
    timeout: float = Field(default=30.0, gt=0)


class WebhookReceiver(_Receiver):
    """Any HTTP endpoint: a POST of WebhookPayload v1 JSON per notification, signed with
    HMAC-SHA256 when ``secret_env`` names a secret."""

    type: Literal["webhook"]
    url: str | None = Field(default=None, description="The URL to post to, when not secret.")
    url_env: str | None = Field(
        default=None, description="Environment variable holding the URL (one with a token in it)."
    )
    secret_env: str | None = Field(
        default=None,
        description="Environment variable holding the signing secret: X-Mendline-Signature.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra headers with plain values (no credentials)."
    )
    headers_env: dict[str, str] = Field(
        default_factory=dict,
        description="Extra headers whose values are secrets: header name = variable name.",
    )
    timeout: float = Field(default=10.0, gt=0)


class LogReceiver(_Receiver):
    """One JSON line (WebhookPayload v1, one alert each) per alert, to a file or standard
    output: a development stack's alerts with no accounts, or a log shipper's input."""

    type: Literal["log"]
    path: str | None = Field(default=None, description="Appended to; standard output when unset.")


Receiver = Annotated[
    SlackReceiver | EmailReceiver | PagerDutyReceiver | WebhookReceiver | LogReceiver,
    Field(discriminator="type"),
]


def secret_variables(
    receiver: SlackReceiver | EmailReceiver | PagerDutyReceiver | WebhookReceiver | LogReceiver,
) -> list[tuple[str, str]]:
    """The environment variables ``receiver`` reads, each with the setting that names it
    (``webhook_url_env``; ``headers_env.Authorization`` for a header's)."""
    found: list[tuple[str, str]] = []
    for setting, value in receiver:
        if setting.endswith("_env") and isinstance(value, str):
            found.append((setting, value))
        elif setting == "headers_env" and isinstance(value, dict):
            found += [(f"headers_env.{header}", variable) for header, variable in value.items()]
    return found
