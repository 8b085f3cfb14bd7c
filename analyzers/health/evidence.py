"""What a failing check shows people: the issue's title built from the failing evidence, the
check's target, and outside text made safe to store."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from mendline.analyzers.health.thresholds import Judgement
from mendline.schemas.checks import Check, CheckResult, ErrorKind
from mendline.schemas.duration import format_duration
from mendline.schemas.redaction import redact_url

__all__ = [
    "check_target",
    "downtime_title",
    "failure_evidence",
    "stored_conditions",
    "stored_error",
    "stored_text",
    "trigger_details",
]

_ERRORS: dict[ErrorKind, str] = {
    "refused": "connection refused",
    "timeout": "timed out",
    "dns": "name not resolved",
    "tls": "TLS failed",
    "http": "HTTP exchange failed",
    "query": "query failed",
    "auth": "credentials refused",
    "unreachable": "unreachable",
    "config": "cannot run: configuration",
    "missed": "no check-in",
    "failed": "the job reported a failure",
    "overran": "the run overran",
    "other": "error",
}
_EVIDENCE_CHARS = 120
_ERROR_CHARS = 2000
_CONDITION_CHARS = 500
_TARGET_CHARS = 500


def stored_text(text: str, limit: int) -> str:
    """``text`` as it may be stored: without NUL (PostgreSQL text and jsonb refuse it) and
    at most ``limit`` characters, an ellipsis marking a cut."""
    text = text.replace("\x00", "\ufffd")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def failure_evidence(check: Check, result: CheckResult) -> str:
    """What failed, in a few words: the probe's error ("timed out after 10s"), else the
    first failed condition ("HTTP 503", "[BODY] == ok: got down")."""
    if result.error_kind is not None:
        phrase = _ERRORS[result.error_kind]
        if result.error_kind == "timeout" and check.kind != "heartbeat":
            phrase += f" after {format_duration(check.timeout)}"
        return phrase
    failed = next((c for c in result.conditions if not c.success), None)
    if failed is not None:
        if failed.condition.lstrip().upper().startswith("[STATUS]"):
            return stored_text(f"HTTP {failed.observed}", _EVIDENCE_CHARS)
        return stored_text(f"{failed.condition}: got {failed.observed}", _EVIDENCE_CHARS)
    if result.error:
        return stored_text(result.error, _EVIDENCE_CHARS)
    return "failed"


def downtime_title(check: Check, result: CheckResult, failures: int) -> str:
    """The title of a check's issue when it goes down, from the result that made it so:
    "Downtime: payments-api (HTTP 503, 3 checks in a row)"."""
    what = "Heartbeat failing" if check.kind == "heartbeat" else "Downtime"
    row = f"{failures} checks in a row" if failures > 1 else "1 check"
    return f"{what}: {check.name} ({failure_evidence(check, result)}, {row})"


def check_target(check: Check) -> str:
    """What the check looks at, for people: a URL (its secrets filtered), host:port, a DNS
    name, the variable holding a DSN (never its value), a broker and group, a schedule."""
    if check.kind == "http":
        return redact_url(check.url)
    if check.kind == "tcp" or check.kind == "tls":
        return f"{check.host}:{check.port}"
    if check.kind == "dns":
        where = f" @{check.nameserver}" if check.nameserver else ""
        return f"{check.query} {check.record_type}{where}"
    if check.kind == "postgres":
        return f"${check.dsn_env}"
    if check.kind == "kafka":
        broker = redact_url(check.bootstrap) if check.bootstrap else "$MENDLINE_KAFKA_BOOTSTRAP"
        if check.group:
            return f"{broker} {check.group}/{check.topic}"
        return f"{broker} {check.topic}" if check.topic else broker
    if check.every is not None:
        return f"every {format_duration(check.every)}"
    return f"cron {check.cron} {check.timezone}"


def stored_error(result: CheckResult) -> str | None:
    """The result's error as stored: shortened, without NUL."""
    return None if result.error is None else stored_text(result.error, _ERROR_CHARS)


def stored_conditions(result: CheckResult) -> list[dict[str, Any]]:
    """The result's conditions as stored (JSON): what each read, shortened."""
    return [
        {
            "condition": stored_text(c.condition, _CONDITION_CHARS),
            "success": c.success,
            "observed": stored_text(c.observed, _CONDITION_CHARS),
        }
        for c in result.conditions
    ]


def trigger_details(check: Check, result: CheckResult, judged: Judgement) -> dict[str, Any]:
    """A health trigger's details (JSON): the check, what it looks at, where it stands after
    the result, the result's evidence and timings, and judge's reasons."""
    return {
        "check": check.name,
        "check_kind": check.kind,
        "target": stored_text(check_target(check), _TARGET_CHARS),
        "status": judged.state.status,
        "failures": judged.state.failures,
        "successes": judged.state.successes,
        "error": stored_error(result),
        "error_kind": result.error_kind,
        "conditions": stored_conditions(result),
        "timings": dict(result.timings),
        "reasons": list(judged.reasons),
        "scheduled_at": result.scheduled_at.astimezone(UTC).isoformat(),
    }
