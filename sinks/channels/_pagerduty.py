"""PagerDuty Events API v2: one trigger or resolve event per alert, deduplicated per issue."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx

from mendline.schemas.alert import (
    ENDS_INCIDENT,
    HEALTH_KINDS,
    REMEDIATION_FAILED,
    Alert,
    ChannelError,
    Notification,
    PagerDutyReceiver,
)
from mendline.schemas.http import retriable_status, retry_after
from mendline.sinks.channels._render import releases, summary

__all__ = ["PagerDutyChannel", "dedup_key"]

_MAX_SUMMARY = 1024  # PagerDuty's limit
_MAX_COMPONENT = 255
_EXCEPTION_TYPE = re.compile(r"[A-Za-z_][\w.]*")


def dedup_key(alert: Alert) -> str:
    """The key every event about one issue shares, so that PagerDuty keeps one incident: a
    health check's issue is its check's (one per check and environment), so its recovery
    resolves the incident its going down opened."""
    return f"mendline-issue-{alert.issue.id}"


def _event(alert: Alert, routing_key: str) -> dict[str, Any]:
    issue, finding = alert.issue, alert.finding
    head, _, _ = issue.title.partition(":")
    health = alert.kind in HEALTH_KINDS
    # Only errors and a check going down are analysed; the rest wait for no root cause.
    analysed = not (alert.kind == REMEDIATION_FAILED or (health and alert.kind != "health_down"))
    pending = "analysis pending" if analysed else None
    details: dict[str, Any] = {
        "root_cause": finding.root_cause if finding else pending,
        "suggested_fix": finding.suggested_fix if finding else None,
        "fix_risks": list(finding.risks) if finding and finding.risks else None,
        "confidence": finding.confidence if finding else None,
        "times_seen": issue.times_seen,
        "first_seen": issue.first_seen.isoformat() if issue.first_seen else None,
        "releases": releases(issue),
        "environments": issue.environments,
        "link": alert.link,
        "kind": alert.kind,
        "details": alert.details or None,
    }
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "resolve" if alert.kind in ENDS_INCIDENT else "trigger",
        "dedup_key": dedup_key(alert),
        "client": "mendline",
        "payload": {
            "summary": summary(alert, limit=_MAX_SUMMARY),
            "source": issue.service,
            "severity": alert.severity,
            "timestamp": issue.last_seen.isoformat() if issue.last_seen else None,
            "component": _target(alert) if health else issue.culprit,
            "group": issue.service,
            # The exception type when the title starts with one, else what the analysis says;
            # a check's kind (http, tcp...).
            "class": _class(alert, head.strip()),
            "custom_details": {k: v for k, v in details.items() if v is not None},
        },
    }
    event["payload"] = {k: v for k, v in event["payload"].items() if v is not None}
    if alert.link:
        event["client_url"] = alert.link
        event["links"] = [{"href": alert.link, "text": "mendline issue"}]
    return event


def _class(alert: Alert, head: str) -> str:
    if alert.kind == REMEDIATION_FAILED:
        return "remediation"
    if alert.kind in HEALTH_KINDS:
        kind = alert.details.get("check_kind")
        return f"health check: {kind}" if isinstance(kind, str) and kind else "health check"
    if _EXCEPTION_TYPE.fullmatch(head):
        return head
    return alert.finding.category if alert.finding else alert.issue.level


def _target(alert: Alert) -> str | None:
    target = alert.details.get("target")
    return target[:_MAX_COMPONENT] if isinstance(target, str) and target else None


class PagerDutyChannel:
    """Sends to one PagerDuty service: a trigger per alert (a resolve for a resolved issue or
    a check up again),
    all events about one issue under one dedup_key. A digest is sent as several events.

    The reference is ``{"dedup_key"}`` (the first one of a digest; ``dedup_keys`` lists them
    all, space-separated). ``transport`` replaces httpx's, for tests.
    """

    def __init__(
        self,
        receiver: PagerDutyReceiver,
        *,
        routing_key: str,
        name: str = "pagerduty",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self._receiver = receiver
        self._routing_key = routing_key
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(receiver.timeout), transport=transport
        )

    async def send(self, notification: Notification) -> dict[str, str]:
        """Send one event per alert; raise ChannelError at the first one refused (the ones
        before it are safe to send again: PagerDuty deduplicates them)."""
        if self._client.is_closed:
            raise RuntimeError(f"the PagerDuty channel {self.name!r} is closed")
        keys = [
            await self._enqueue(_event(alert, self._routing_key)) for alert in notification.alerts
        ]
        reference = {"dedup_key": keys[0]}
        if len(keys) > 1:
            reference["dedup_keys"] = " ".join(keys)
        return reference

    async def aclose(self) -> None:
        """Close the connection pool; idempotent."""
        await self._client.aclose()

    async def _enqueue(self, event: dict[str, Any]) -> str:
        try:
            # httpx's timeout is per phase; a trickling answer gets the whole call's too.
            async with asyncio.timeout(self._receiver.timeout):
                response = await self._client.post(self._receiver.events_url, json=event)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise ChannelError(
                "PagerDuty did not answer in time", code="timeout", retriable=True
            ) from exc
        except httpx.TransportError as exc:
            raise ChannelError(
                f"cannot reach PagerDuty: {exc!r}", code="unreachable", retriable=True
            ) from exc
        status = response.status_code
        if 200 <= status < 300:
            try:
                answered = response.json().get("dedup_key")
            except (ValueError, AttributeError):
                answered = None
            return answered if isinstance(answered, str) and answered else str(event["dedup_key"])
        raise ChannelError(
            f"PagerDuty answered HTTP {status}: {response.text[:300].strip()}",
            code=f"http_{status}",
            retriable=retriable_status(status),
            status=status,
            retry_after=retry_after(response.headers.get("retry-after")),
        )
