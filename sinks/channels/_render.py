"""What an alert says, rendered once per medium: plain text, Slack Block Kit, and HTML."""

from __future__ import annotations

import html
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mendline.schemas.alert import (
    ALERT_SEVERITIES,
    ENDS_INCIDENT,
    HEALTH_KINDS,
    REMEDIATION_FAILED,
    Alert,
    AlertFinding,
    AlertIssue,
    Notification,
    severity_label,
)
from mendline.schemas.duration import format_duration
from mendline.schemas.finding import (
    RISK_WORDS,
    HealthEvidence,
    confidence_label,
    without_controls,
)

__all__ = [
    "health_fields",
    "releases",
    "remediation_fields",
    "render_blocks",
    "render_html",
    "render_text",
    "slack_escape",
    "slack_text",
    "subject",
    "summary",
]

# Slack's limits: https://docs.slack.dev/reference/block-kit/blocks
_MAX_BLOCKS = 50
_MAX_SECTION = 3000
_MAX_HEADER = 150
_MAX_FIELD = 2000
_MAX_TEXT = 3000  # the notification fallback: Slack takes 40,000, phones show a line
_MAX_SUBJECT = 200
_MAX_ROOT_CAUSE = 1200  # a digest section shares its 3,000 characters with the rest

_SLACK_ICON = {
    "critical": ":rotating_light:",
    "error": ":red_circle:",
    "warning": ":warning:",
    "info": ":information_source:",
}
_RESOLVED_ICON = ":white_check_mark:"
_SUMMARY_KIND = {
    "new_issue": "",
    "regression": " regressed",
    "frequency": " spiking",
    "resolved": "",
    "escalating": " escalating",
    "health_down": " down",
    "health_recovered": " up again",
    "health_flapping": " flapping",
    "remediation_failed": " remediation did not help",
}
_SUMMARY_LEVEL = {"resolved": "RESOLVED", "health_recovered": "RECOVERED"}
_KIND_WORDS = {
    "new_issue": "new issue",
    "resolved": "resolved",
    "escalating": "escalating (ignored, back)",
    "health_down": "down",
    "health_recovered": "up again",
    "health_flapping": "flapping",
    "remediation_failed": "remediation did not help",
}
# What a message in the first one's thread starts with: an outage is over, or back.
_REPEAT_INTRO: dict[str, str | None] = {
    "resolved": None,
    "health_recovered": None,
    "health_flapping": None,
    "health_down": "Down again.",
    "escalating": "Escalating: it was ignored, and it is back.",
    "remediation_failed": "A remediation did not help.",
}
_SPACE = re.compile(r"\s+")
_MAX_HEALTH_VALUE = 500  # an error, a target or an observed value, in a field
_MAX_CONDITIONS = 10
# The phases a probe times, in the order they happen.
_PHASES = ("dns", "connect", "tls", "first_byte", "total")


@dataclass(frozen=True)
class _Facts:
    """One alert's facts as text, computed once and laid out by each rendering."""

    severity: str
    kind: str
    service: str
    title: str
    culprit: str | None
    fields: list[tuple[str, str]]
    root_cause: str | None
    confidence: str | None
    suggested_fix: str | None
    link: str | None
    # Whether a missing root cause is said to be pending: not for a check's up or flapping.
    pending: bool = True


def _facts(alert: Alert) -> _Facts:
    issue, finding = alert.issue, alert.finding
    health = alert.kind in HEALTH_KINDS
    fields = [("Service", issue.service)]
    if issue.environments:
        label = "Environments" if len(issue.environments) > 1 else "Environment"
        fields.append((label, ", ".join(issue.environments)))
    if health:
        fields += health_fields(alert.kind, HealthEvidence.of(alert.details))
    elif alert.kind == REMEDIATION_FAILED:
        fields += remediation_fields(alert.details)
    else:
        fields += _error_fields(issue)
    return _Facts(
        severity=severity_label(alert.severity),
        kind=_kind(alert),
        service=issue.service,
        title=issue.title,
        culprit=None if health or alert.kind == REMEDIATION_FAILED else issue.culprit,
        fields=fields,
        root_cause=finding.root_cause if finding else None,
        confidence=confidence_label(finding.confidence) if finding else None,
        suggested_fix=_fix_of(finding) if finding else None,
        # Only web links become links: a link is shown to people who will click it.
        link=alert.link if alert.link and alert.link.startswith(("https://", "http://")) else None,
        pending=alert.kind == "health_down" or _analysed(alert.kind),
    )


def _analysed(kind: str) -> bool:
    """Whether an alert of ``kind`` is analysed: an error's, not a check's (but going down)
    nor a remediation's."""
    return kind not in HEALTH_KINDS and kind != REMEDIATION_FAILED


def _error_fields(issue: AlertIssue) -> list[tuple[str, str]]:
    fields = [("Seen", f"{issue.times_seen} time{'' if issue.times_seen == 1 else 's'}")]
    if issue.first_seen is not None:
        fields.append(("First seen", _when(issue.first_seen)))
    if issue.last_seen is not None:
        fields.append(("Last seen", _when(issue.last_seen)))
    if issue.last_release and issue.first_release and issue.first_release != issue.last_release:
        fields.append(("Release", f"{issue.last_release} (first seen in {issue.first_release})"))
    elif issue.last_release or issue.first_release:
        fields.append(("Release", issue.last_release or issue.first_release or ""))
    return fields


def health_fields(kind: str, evidence: HealthEvidence) -> list[tuple[str, str]]:
    """A health alert's facts as (label, text) pairs, unescaped, control characters taken
    out and each clipped: the check, its target, its status, how long it was down (a
    recovery), the failing conditions with the values observed, the error and the timings."""
    fields = []
    if evidence.check:
        kind_of = f" ({evidence.check_kind})" if evidence.check_kind else ""
        fields.append(("Check", f"{evidence.check}{kind_of}"))
    if evidence.target:
        fields.append(("Target", evidence.target))
    fields.append(("Status", _status(kind, evidence)))
    if kind in ENDS_INCIDENT and (down := _down_for(evidence)):
        fields.append(("Down for", down))
    failing = evidence.failing
    if failing and kind != "health_recovered":
        lines = [f"{c.condition} (observed: {c.observed})" for c in failing[:_MAX_CONDITIONS]]
        if len(failing) > _MAX_CONDITIONS:
            lines.append(f"and {len(failing) - _MAX_CONDITIONS} more")
        label = "Failing conditions" if len(failing) > 1 else "Failing condition"
        fields.append((label, "\n".join(lines)))
    if evidence.error and kind != "health_recovered":
        kind_of = f" ({evidence.error_kind})" if evidence.error_kind else ""
        fields.append(("Error", f"{evidence.error}{kind_of}"))
    if evidence.timings:
        fields.append(("Timings", _timings(evidence.timings)))
    if evidence.scheduled_at is not None:
        fields.append(("Checked at", _when(evidence.scheduled_at)))
    return [(label, _clip(_clean(value), _MAX_HEALTH_VALUE)) for label, value in fields]


def remediation_fields(details: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A remediation's alert facts as (label, text) pairs, unescaped, control characters
    taken out and each clipped: the remediation and its target, the run, what ran and how
    it ended, and what running its check again showed."""
    run = details.get("run_id")
    name, target = _text(details.get("remediation")), _text(details.get("run_target"))
    fields = [("Remediation", f"{name} on {target}" if target and target != name else name)]
    if isinstance(run, int):
        fields.append(("Run", f"{run} ({_text(details.get('state'))})"))
    fields.append(("Ran", _text(details.get("ran"))))
    fields.append(("Outcome", _text(details.get("detail"))))
    check = _text(details.get("check"))
    verified = details.get("verified")
    if verified is False:
        fields.append(("Check again", f"{check} still failed after the run"))
    elif check:
        fields.append(("Check again", f"{check} was not run again: the run itself failed"))
    if asked := _text(details.get("trigger")):
        fields.append(("Asked by", asked))
    fields.append(("See", f"mendline remediations list --target {shlex.quote(target or name)}"))
    return [(label, _clip(_clean(value), _MAX_HEALTH_VALUE)) for label, value in fields if value]


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _status(kind: str, evidence: HealthEvidence) -> str:
    if kind == "health_flapping":
        why = "; ".join(evidence.reasons[-2:])
        return f"flapping: {why}" if why else "flapping: its status changes too often"
    if kind == "health_recovered":
        n = evidence.successes
        return f"up: {n} success{'es' if n != 1 else ''} in a row" if n else "up"
    n = evidence.failures
    return f"down: {n} failure{'s' if n != 1 else ''} in a row" if n else "down"


def _down_for(evidence: HealthEvidence) -> str | None:
    if evidence.down_since is None:
        return None
    text = f"since {_when(evidence.down_since)}"
    if evidence.scheduled_at is None:
        return text
    seconds = round((evidence.scheduled_at - evidence.down_since).total_seconds())
    return f"{format_duration(max(0, seconds))} ({text}, when it was found down)"


def _timings(timings: dict[str, float]) -> str:
    order = [p for p in _PHASES if p in timings] + sorted(set(timings) - set(_PHASES))
    return " · ".join(f"{phase} {_seconds(timings[phase])}" for phase in order[:10])


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _clean(text: str) -> str:
    # A terminal escape, a NUL or a carriage return has no business in a message or a header.
    return without_controls(text)


def _fix_of(finding: AlertFinding) -> str:
    """The suggested fix, after a warning when it has risks: an LLM wrote it after reading
    event text, and people copy fixes into terminals."""
    if not finding.risks:
        return finding.suggested_fix
    words = "; ".join(RISK_WORDS[risk] for risk in finding.risks)
    return f"[WARNING, check before acting: {words}] {finding.suggested_fix}"


def _kind(alert: Alert) -> str:
    if alert.kind in _KIND_WORDS:
        return _KIND_WORDS[alert.kind]
    if alert.kind == "regression":
        release = alert.issue.last_release
        return f"regressed in {release}" if release else "regressed"
    events, minutes = alert.details.get("events"), alert.details.get("minutes")
    if events is None or minutes is None:
        return "spiking"
    return f"spiking: {events} events in {minutes} min"


def _when(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _intro(notification: Notification) -> str | None:
    """How this message relates to the one sent before about the same issue."""
    if notification.mode == "update":
        found = any(a.finding is not None for a in notification.alerts)
        return "Update: the root cause is in." if found else "Update."
    if notification.mode == "repeat":
        return _REPEAT_INTRO.get(notification.alerts[0].kind, "Still happening.")
    return None


def _one_line(text: str) -> str:
    return _SPACE.sub(" ", _clean(text)).strip()


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _severity_counts(alerts: list[Alert]) -> str:
    counts = {s: sum(a.severity == s for a in alerts) for s in ALERT_SEVERITIES}
    return ", ".join(f"{counts[s]} {s}" for s in reversed(ALERT_SEVERITIES) if counts[s])


def _digest_title(notification: Notification) -> str:
    alerts = notification.alerts
    return f"{len(alerts)} issues: {_severity_counts(alerts)}"


def releases(issue: AlertIssue) -> list[str]:
    """The releases an issue was seen in that we know of, first one first."""
    return list(dict.fromkeys(r for r in (issue.first_release, issue.last_release) if r))


def summary(alert: Alert, limit: int = _MAX_SUBJECT) -> str:
    """One line about one alert: ``ERROR api: ValueError: ...`` (``RESOLVED api: ...``,
    ``ERROR payments-api down: Downtime: ...``, ``RECOVERED payments-api up again: ...``)."""
    level = _SUMMARY_LEVEL.get(alert.kind, severity_label(alert.severity))
    head = f"{level} {alert.issue.service}{_SUMMARY_KIND[alert.kind]}"
    return _clip(_one_line(f"{head}: {alert.issue.title}"), limit)


def subject(notification: Notification) -> str:
    """An email subject: ``[mendline] ERROR api: ...`` or ``[mendline] 3 issues: ...``."""
    if notification.is_digest:
        text = f"[mendline] {_digest_title(notification)}"
    else:
        text = f"[mendline] {summary(notification.alerts[0])}"
    # Mail clients thread a reply by its references and by "Re:" before the same subject.
    return f"Re: {text}" if notification.mode != "new" else text


# -- plain text ----------------------------------------------------------------------------


def _text_of(facts: _Facts) -> str:
    lines = [f"[{facts.severity}] {facts.kind} · {facts.service}", facts.title]
    if facts.culprit:
        lines.append(f"Culprit: {facts.culprit}")
    lines += [f"{label}: {value}" for label, value in facts.fields]
    if facts.root_cause is None:
        lines += ["Root cause: analysis pending"] if facts.pending else []
    else:
        lines.append(f"Root cause ({facts.confidence} confidence): {facts.root_cause}")
        lines.append(f"Suggested fix: {facts.suggested_fix}")
    if facts.link:
        lines.append(f"Link: {facts.link}")
    return "\n".join(lines)


def render_text(notification: Notification) -> str:
    """The whole message as plain text; a digest lists every issue."""
    parts = [intro] if (intro := _intro(notification)) else []
    if notification.is_digest:
        parts.append(f"mendline: {_digest_title(notification)}")
    parts += [_text_of(_facts(alert)) for alert in notification.alerts]
    return "\n\n".join(parts) + "\n"


# -- Slack ---------------------------------------------------------------------------------


def slack_escape(text: str) -> str:
    """``text`` safe inside Slack mrkdwn: the three characters Slack asks to be escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(url: str, label: str) -> str:
    # "|" and ">" end the URL part of a link; percent-encoding them keeps the URL the same.
    target = slack_escape(url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C"))
    return f"<{target}|{slack_escape(label)}>"


def _code(text: str) -> str:
    return "`" + slack_escape(text.replace("`", "'")) + "`"


def _section_text(text: str) -> str:
    if len(text) <= _MAX_SECTION:
        return text
    cut = text[: _MAX_SECTION - 1]
    entity = cut.rfind("&")
    if entity != -1 and ";" not in cut[entity:]:
        cut = cut[:entity]  # never cut an escape such as &amp; in two
    return cut + "…"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _section_text(text)}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _section_text(text)}]}


def _header(text: str) -> dict[str, Any]:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": _clip(_one_line(text), _MAX_HEADER), "emoji": True},
    }


def _icon(alert: Alert) -> str:
    return _RESOLVED_ICON if alert.kind in ENDS_INCIDENT else _SLACK_ICON[alert.severity]


def _slack_title(facts: _Facts) -> str:
    title = _clip(_one_line(facts.title), 500)
    return f"*{_slack_link(facts.link, title)}*" if facts.link else f"*{slack_escape(title)}*"


def _slack_root_cause(facts: _Facts) -> str:
    if facts.root_cause is None:
        return "_root cause: analysis pending_" if facts.pending else ""
    return (
        f"*Root cause* ({facts.confidence} confidence)\n"
        f"{slack_escape(_clip(facts.root_cause, _MAX_ROOT_CAUSE))}\n"
        f"*Suggested fix*\n{slack_escape(_clip(facts.suggested_fix or '', _MAX_ROOT_CAUSE))}"
    )


def _alert_blocks(alert: Alert) -> list[dict[str, Any]]:
    facts = _facts(alert)
    headline = _slack_title(facts)
    if facts.culprit:
        headline += "\n" + _code(_clip(facts.culprit, 300))
    fields = [
        {"type": "mrkdwn", "text": f"*{label}*\n{slack_escape(_clip(value, _MAX_FIELD - 50))}"}
        for label, value in facts.fields
    ]
    blocks = [
        _header(f"{_icon(alert)} {facts.severity} · {facts.kind} · {facts.service}"),
        _section(headline),
        {"type": "section", "fields": fields[:10]},
    ]
    if analysis := _slack_root_cause(facts):
        blocks.append(_section(analysis))
    return blocks


def _digest_section(alert: Alert) -> dict[str, Any]:
    facts = _facts(alert)
    seen = " · ".join(slack_escape(f"{label} {value}") for label, value in facts.fields[1:])
    lines = [
        f"{_icon(alert)} *{facts.severity}* · {slack_escape(facts.kind)} · "
        f"{slack_escape(facts.service)}",
        _slack_title(facts),
    ]
    if facts.culprit:
        lines.append(_code(_clip(facts.culprit, 300)))
    lines += [seen, _slack_root_cause(facts)]
    return _section("\n".join(line for line in lines if line))


def render_blocks(notification: Notification) -> list[dict[str, Any]]:
    """The message as Slack Block Kit blocks, within Slack's limits (a long digest ends
    with "and N more")."""
    intro = _intro(notification)
    blocks = [_context(f"_{intro}_")] if intro else []
    if not notification.is_digest:
        return blocks + _alert_blocks(notification.alerts[0])
    blocks.insert(0, _header(f"mendline: {_digest_title(notification)}"))
    room = _MAX_BLOCKS - len(blocks) - 1  # one left for "and N more"
    shown = notification.alerts[:room]
    blocks += [_digest_section(alert) for alert in shown]
    if hidden := len(notification.alerts) - len(shown):
        blocks.append(_context(f"and {hidden} more"))
    return blocks


def slack_text(notification: Notification) -> str:
    """The message's fallback text (notifications, screen readers), escaped for mrkdwn."""
    if notification.is_digest:
        head = f"mendline: {_digest_title(notification)}"
        lines = [head, *(summary(a) for a in notification.alerts)]
    else:
        lines = [summary(notification.alerts[0], limit=_MAX_TEXT)]
    if intro := _intro(notification):
        lines.insert(0, intro)
    return slack_escape(_clip("\n".join(lines), _MAX_TEXT))


# -- HTML ----------------------------------------------------------------------------------


def _e(text: str) -> str:
    return html.escape(_clean(text), quote=True)


def _html_of(alert: Alert) -> str:
    facts = _facts(alert)
    title = _e(facts.title)
    if facts.link:
        title = f'<a href="{_e(facts.link)}">{title}</a>'
    rows = [("Culprit", facts.culprit)] if facts.culprit else []
    rows += facts.fields
    table = "".join(
        f'<tr><th align="left" style="padding-right:12px">{_e(label)}</th>'
        f"<td>{_e(value).replace(chr(10), '<br>')}</td></tr>"
        for label, value in rows
    )
    if facts.root_cause is None:
        analysis = "<p><em>Root cause: analysis pending</em></p>" if facts.pending else ""
    else:
        analysis = (
            f"<p><strong>Root cause</strong> ({_e(facts.confidence or '')} confidence): "
            f"{_e(facts.root_cause)}</p>"
            f"<p><strong>Suggested fix:</strong> {_e(facts.suggested_fix or '')}</p>"
        )
    return (
        f"<p><strong>[{_e(facts.severity)}]</strong> {_e(facts.kind)} · {_e(facts.service)}</p>"
        f"<h3>{title}</h3><table>{table}</table>{analysis}"
    )


def render_html(notification: Notification) -> str:
    """The whole message as an HTML document, every value escaped; a digest lists every
    issue."""
    parts = [f"<p><em>{_e(intro)}</em></p>"] if (intro := _intro(notification)) else []
    if notification.is_digest:
        parts.append(f"<h2>mendline: {_e(_digest_title(notification))}</h2>")
    parts.append("<hr>".join(_html_of(alert) for alert in notification.alerts))
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
        f'<body style="font-family:sans-serif">\n{body}\n</body></html>\n'
    )
