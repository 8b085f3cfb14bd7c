"""The JSON a webhook receiver is posted and a log receiver writes: WebhookPayload v1."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mendline.schemas.alert import AlertKind, AlertSeverity
from mendline.schemas.finding import Risk

__all__ = [
    "WEBHOOK_JSON_SCHEMA_PATH",
    "WEBHOOK_PAYLOAD_VERSION",
    "WebhookAlert",
    "WebhookFinding",
    "WebhookIssue",
    "WebhookPayload",
    "webhook_json_schema",
    "webhook_json_schema_text",
]

#: The payload's version: additive changes keep it, anything else bumps it.
WEBHOOK_PAYLOAD_VERSION: Literal["1"] = "1"
WEBHOOK_JSON_SCHEMA_PATH = Path(__file__).with_name("webhook-alert.v1.json")


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookIssue(_Part):
    """The issue an alert is about, as stored when it was sent."""

    id: int = Field(description="The issue's id in mendline.")
    title: str = Field(description="From the events: data, never markup.")
    culprit: str | None = Field(default=None, description="Where it was raised (module.function).")
    service: str
    level: str = Field(description="debug, info, warning, error or critical.")
    status: str = Field(description="unresolved, resolved, ignored, ...")
    environments: list[str] = Field(default_factory=list)
    times_seen: int = Field(description="Events counted for the issue.")
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    first_release: str | None = None
    last_release: str | None = None


class WebhookFinding(_Part):
    """The root cause mendline found, when there is one by the time the alert is sent."""

    root_cause: str
    suggested_fix: str
    category: str
    severity: str
    confidence: float = Field(ge=0, le=1)
    analyser: str = Field(description="heuristic or llm.")
    model: str | None = None
    risks: list[Risk] = Field(default_factory=list)


class WebhookAlert(_Part):
    """One alert: an issue's reason to tell someone."""

    status: Literal["firing", "resolved"] = Field(
        description="resolved for a resolved issue or a check up again; firing otherwise."
    )
    kind: AlertKind
    severity: AlertSeverity
    labels: dict[str, str] = Field(
        description="What routes and silences match: severity, kind, service, environment,"
        " tag:NAME."
    )
    issue: WebhookIssue
    finding: WebhookFinding | None = None
    details: dict[str, Any] = Field(
        default_factory=dict, description='Kind-specific facts: {"events": 120, "minutes": 5}.'
    )
    link: str | None = Field(default=None, description="Where people see the issue.")
    dedup_key: str = Field(description="Shared by every alert about one issue.")
    delivery_id: int | None = Field(
        default=None,
        description="This alert's delivery to this receiver, the same on every retry of it"
        " (also in the X-Mendline-Delivery header): deduplicate on it.",
    )


class WebhookPayload(_Part):
    """What one notification posts: one alert, or a digest's several (modelled on
    Alertmanager's webhook payload). Every string that came from an event is data: a
    receiver that shows it escapes it."""

    version: Literal["1"] = Field(description="The payload's version (this schema: 1).")
    receiver: str = Field(description="The receiver's name in the routes file.")
    status: Literal["firing", "resolved"] = Field(
        description="resolved when every alert is resolved; firing otherwise."
    )
    mode: Literal["new", "update", "repeat"] = Field(
        description="new; update (a late finding, of what was sent); repeat (after"
        " repeat_interval, or an incident's end)."
    )
    alerts: list[WebhookAlert] = Field(min_length=1)
    common_labels: dict[str, str] = Field(description="The labels every alert has alike.")
    sent_at: datetime = Field(description="When mendline sent it (UTC).")


def webhook_json_schema() -> dict[str, Any]:
    """The JSON Schema of WebhookPayload v1, as exported to ``webhook-alert.v1.json``."""
    schema = WebhookPayload.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://mendline.dev/schemas/webhook-alert.v1.json"
    schema["title"] = "mendline webhook payload v1"
    return schema


def webhook_json_schema_text() -> str:
    """The exported file's exact text (``mendline schema --webhook --write`` updates it)."""
    return json.dumps(webhook_json_schema(), indent=2, sort_keys=True) + "\n"
