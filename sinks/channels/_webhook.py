"""Generic webhooks (a signed POST of WebhookPayload v1) and log receivers (JSON lines)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import httpx

from mendline.analyzers.policy import alert_labels
from mendline.schemas.alert import (
    ENDS_INCIDENT,
    Alert,
    ChannelError,
    LogReceiver,
    Notification,
    WebhookReceiver,
)
from mendline.schemas.http import retriable_status, retry_after
from mendline.schemas.webhook import (
    WEBHOOK_PAYLOAD_VERSION,
    WebhookAlert,
    WebhookFinding,
    WebhookIssue,
    WebhookPayload,
)
from mendline.sinks.channels._pagerduty import dedup_key

__all__ = ["LogChannel", "WebhookChannel", "sign", "webhook_payload"]

TIMESTAMP_HEADER = "X-Mendline-Timestamp"
SIGNATURE_HEADER = "X-Mendline-Signature"
DELIVERY_HEADER = "X-Mendline-Delivery"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256, keyed with
    ``secret``, of ``<timestamp>.<raw body>``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def _labels(alert: Alert) -> dict[str, str]:
    # Alerts from the store carry their labels; the service and kind are known to any.
    return alert.labels or alert_labels(
        severity=alert.severity, kind=alert.kind, service=alert.issue.service
    )


def _status(alert: Alert) -> str:
    return "resolved" if alert.kind in ENDS_INCIDENT else "firing"


def _alert(alert: Alert) -> WebhookAlert:
    issue, finding = alert.issue, alert.finding
    return WebhookAlert(
        status=_status(alert),  # type: ignore[arg-type]
        kind=alert.kind,
        severity=alert.severity,
        labels=_labels(alert),
        issue=WebhookIssue(
            id=issue.id,
            title=issue.title,
            culprit=issue.culprit,
            service=issue.service,
            level=issue.level,
            status=issue.status,
            environments=list(issue.environments),
            times_seen=issue.times_seen,
            first_seen=issue.first_seen,
            last_seen=issue.last_seen,
            first_release=issue.first_release,
            last_release=issue.last_release,
        ),
        finding=WebhookFinding.model_validate(finding.model_dump()) if finding else None,
        details=dict(alert.details),
        link=alert.link,
        dedup_key=dedup_key(alert),
        delivery_id=alert.delivery_id,
    )


def webhook_payload(notification: Notification, now: datetime) -> WebhookPayload:
    """The payload of ``notification`` as sent at ``now``: its alerts, the labels they share,
    ``resolved`` when all of them are."""
    alerts = [_alert(a) for a in notification.alerts]
    common = dict(alerts[0].labels)
    for other in alerts[1:]:
        common = {k: v for k, v in common.items() if other.labels.get(k) == v}
    return WebhookPayload(
        version=WEBHOOK_PAYLOAD_VERSION,
        receiver=notification.receiver,
        status="resolved" if all(a.status == "resolved" for a in alerts) else "firing",
        mode=notification.mode,
        alerts=alerts,
        common_labels=common,
        sent_at=now,
    )


def _now() -> datetime:
    return datetime.now(UTC)


class WebhookChannel:
    """Posts WebhookPayload v1 JSON to one URL. With a secret, each request carries
    ``X-Mendline-Timestamp`` (Unix seconds) and ``X-Mendline-Signature: sha256=<hex>`` over
    ``<timestamp>.<raw body>``; a receiver checks it and refuses old timestamps. Each request
    carries ``X-Mendline-Delivery``: the ids of the deliveries it holds (comma-separated, one
    per alert), the same when a failed POST is retried, so a receiver can drop a repeat.

    The reference is empty (a webhook has no message to update). Failures are ChannelErrors,
    retriable for a timeout, an unreachable host, 408, 429 and 5xx (``retriable_status``).
    ``transport`` replaces httpx's, for tests.
    """

    def __init__(
        self,
        receiver: WebhookReceiver,
        *,
        url: str,
        secret: str | None = None,
        secret_headers: Mapping[str, str] | None = None,
        name: str = "webhook",
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self._receiver = receiver
        self._url = url
        self._secret = secret
        self._headers = {
            **receiver.headers,
            **(secret_headers or {}),
            "Content-Type": "application/json",
            "User-Agent": "mendline-webhook/1",
        }
        self._clock = clock
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(receiver.timeout), transport=transport
        )

    async def send(self, notification: Notification) -> dict[str, str]:
        """Post the notification's payload; raise ChannelError if the endpoint refuses."""
        if self._client.is_closed:
            raise RuntimeError(f"the webhook channel {self.name!r} is closed")
        body = webhook_payload(notification, _now()).model_dump_json().encode()
        headers = dict(self._headers)
        delivered = [str(a.delivery_id) for a in notification.alerts if a.delivery_id is not None]
        if delivered:
            headers[DELIVERY_HEADER] = ",".join(delivered)
        if self._secret is not None:
            timestamp = str(int(self._clock()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
        try:
            async with asyncio.timeout(self._receiver.timeout):
                response = await self._client.post(self._url, content=body, headers=headers)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise ChannelError(
                f"webhook {self.name!r} did not answer in time", code="timeout", retriable=True
            ) from exc
        except httpx.TransportError as exc:
            # Not the exception's text: it may hold the URL, which may hold a token.
            raise ChannelError(
                f"cannot reach webhook {self.name!r} ({type(exc).__name__})",
                code="unreachable",
                retriable=True,
            ) from exc
        status = response.status_code
        if 200 <= status < 300:
            return {}
        raise ChannelError(
            f"webhook {self.name!r} answered HTTP {status}",
            code=f"http_{status}",
            retriable=retriable_status(status),
            status=status,
            retry_after=retry_after(response.headers.get("retry-after")),
        )

    async def aclose(self) -> None:
        """Close the connection pool; idempotent."""
        await self._client.aclose()


def _line(payload: WebhookPayload) -> str:
    # ensure_ascii: C1 controls and bidirectional marks are escaped too, not only C0 ones.
    return json.dumps(payload.model_dump(mode="json"), ensure_ascii=True) + "\n"


class LogChannel:
    """Writes one JSON line per alert (WebhookPayload v1 with that one alert) to a file,
    appended to, or to standard output. JSON escapes control characters and everything
    beyond ASCII, so a line from a hostile event cannot move a terminal's cursor."""

    def __init__(
        self,
        receiver: LogReceiver,
        *,
        name: str = "log",
        stream: TextIO | None = None,
    ) -> None:
        self.name = name
        self._path = Path(receiver.path) if receiver.path else None
        self._stream = stream

    async def send(self, notification: Notification) -> dict[str, str]:
        """Write the lines; raise ChannelError (retriable) if the file cannot be written."""
        now = _now()
        lines = "".join(
            _line(webhook_payload(notification.model_copy(update={"alerts": [alert]}), now))
            for alert in notification.alerts
        )
        try:
            if self._path is not None:
                await asyncio.to_thread(self._append, self._path, lines)
            else:
                stream = self._stream or sys.stdout
                stream.write(lines)
                stream.flush()
        except OSError as exc:
            raise ChannelError(
                f"log receiver {self.name!r} cannot write: {exc.strerror or exc}",
                code="unwritable",
                retriable=True,
            ) from exc
        return {}

    async def aclose(self) -> None:
        """Nothing to release."""

    @staticmethod
    def _append(path: Path, lines: str) -> None:
        with path.open("a", encoding="ascii") as file:
            file.write(lines)
