"""Alert decisions: an alert's severity and labels, and whether, how and when a receiver hears.

Pure functions over plain values: the alert store reads what they need, calls them, and writes
what they decide. Every delivery decision carries its reasons, short sentences saying why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from mendline.schemas.alert import (
    ALERT_SEVERITIES,
    ENDS_INCIDENT,
    HEALTH_KINDS,
    REMEDIATION_FAILED,
    AlertSeverity,
    Receiver,
)
from mendline.schemas.duration import format_duration
from mendline.schemas.event import LEVEL_RANK
from mendline.schemas.finding import SEVERITIES, Severity

__all__ = [
    "LABEL_NAMES",
    "NO_GROUP",
    "SEVERITY_RAISE_CONFIDENCE",
    "TAG_PREFIX",
    "DeliveryDecision",
    "DeliveryMode",
    "FollowUp",
    "GroupState",
    "RouteTiming",
    "SentMessage",
    "SeverityDecision",
    "alert_labels",
    "alert_severity",
    "decide_delivery",
    "finding_severity",
    "follow_finding",
    "higher_severity",
    "resolve_audience",
    "takes_digests",
]

#: The labels every alert has; tags add ``tag:<name>`` labels.
LABEL_NAMES = ("severity", "service", "environment", "kind")
#: The prefix of a tag's label: ``tag:team``.
TAG_PREFIX = "tag:"

#: ``new``: the receiver's first message about the issue; ``repeat``: another one, in the first
#: one's thread (a regression, a resolve, or repeat_interval passed); ``update``: an edit of
#: what was sent; ``suppressed``: recorded, not sent (told lately, or a message is waiting).
DeliveryMode = Literal["new", "repeat", "update", "suppressed"]

_FINDING_RAISES: dict[str, AlertSeverity] = {"critical": "critical", "high": "error"}
# The triggers whose first message waits for its root cause (group_wait at most). A check
# that went down does not: its finding only restates the evidence the message shows.
_WAITS_FOR_FINDING = ("new_issue", "regression")
# The triggers told whatever was sent lately or waits to be sent, in the first message's
# thread when there is one: each says something new (back again, down again, flapping).
_ALWAYS_NOTIFIES = {
    "regression": "a regression",
    "escalating": "an ignored issue escalating",
    "health_down": "a check going down",
    "health_flapping": "a check starting to flap",
    REMEDIATION_FAILED: "a remediation that did not help",
}


#: The confidence (0 to 1) an LLM's finding needs, with the heuristic's agreement, to raise
#: its severity above the issue's own level: below it, text planted in an event ("set severity
#: critical") could page someone.
SEVERITY_RAISE_CONFIDENCE = 0.8


# -- severity and labels -------------------------------------------------------------------


@dataclass(frozen=True)
class SeverityDecision:
    """The severity an LLM's finding keeps, whether it was capped, and why."""

    severity: Severity
    capped: bool
    reason: str


def finding_severity(
    level: str, severity: Severity, confidence: float, heuristic: Severity
) -> SeverityDecision:
    """The severity an LLM's finding may keep for an issue of ``level``.

    The issue's level is taken as a severity (critical; error -> high; warning -> medium;
    info, debug -> low). An answer's ``severity`` at or below it is returned as it is, lower
    ones included (a finding may judge an issue less severe than its level; the alert's
    severity still starts from the level, see ``alert_severity``). Above it, ``severity``
    stands only when its ``confidence`` is at least SEVERITY_RAISE_CONFIDENCE and the
    heuristic analyser's severity for the same issue (``heuristic``) is as high or higher;
    else it is capped at the issue's level (the event text the answer read may have asked
    for more).
    """
    # The same mapping as alert_severity's: an unknown level counts as error.
    own = SEVERITIES[min(max(LEVEL_RANK.get(level, 3) - 1, 0), 3)]
    rank = SEVERITIES.index
    if rank(severity) <= rank(own):
        return SeverityDecision(severity, False, f"{severity} is not above the level {level}")
    confident = confidence >= SEVERITY_RAISE_CONFIDENCE
    agrees = rank(heuristic) >= rank(severity)
    if confident and agrees:
        return SeverityDecision(
            severity,
            False,
            f"{severity} above the level {level}: confidence {confidence:.2f} and the"
            f" heuristic ({heuristic}) agrees",
        )
    why = []
    if not confident:
        why.append(f"confidence {confidence:.2f} is below {SEVERITY_RAISE_CONFIDENCE:.2f}")
    if not agrees:
        why.append(f"the heuristic says {heuristic}")
    return SeverityDecision(
        own, True, f"{severity} capped at {own} (level {level}): " + " and ".join(why)
    )


def alert_severity(level: str, finding_severity: str | None, kind: str) -> AlertSeverity:
    """The severity of an alert: the issue's level (critical, error, warning; info below),
    raised to critical by a critical finding and to error by a high one, and raised one step
    (up to error) for a spike, a regression or an escalation: they page only when the issue
    is critical. An LLM finding's severity was kept within the issue's level when it was
    made, unless it was confident and the heuristic agreed (``finding_severity``).

    A health check's alert (``HEALTH_KINDS``) has its issue's level, the check's ``severity``
    as written in the checks file: people chose it, and neither a finding nor the kind moves
    it. So has a remediation that did not help (``REMEDIATION_FAILED``): it tells more of an
    outage or an issue people were told of at that severity."""
    rank = min(max(LEVEL_RANK.get(level, 3) - 1, 0), 3)  # debug, info -> info
    if kind in HEALTH_KINDS or kind == REMEDIATION_FAILED:
        return ALERT_SEVERITIES[rank]
    if finding_severity in _FINDING_RAISES:
        rank = max(rank, ALERT_SEVERITIES.index(_FINDING_RAISES[finding_severity]))
    if kind in ("frequency", "regression", "escalating") and rank < 2:
        rank += 1
    return ALERT_SEVERITIES[rank]


def higher_severity(first: AlertSeverity, second: AlertSeverity) -> AlertSeverity:
    """The higher of two alert severities (a finding that arrives later may raise an alert's
    severity, never lower it)."""
    return max(first, second, key=ALERT_SEVERITIES.index)


def alert_labels(
    *,
    severity: str,
    kind: str,
    service: str | None = None,
    environment: str | None = None,
    tags: Mapping[str, object] | None = None,
) -> dict[str, str]:
    """The labels routes match on, for the worker's routing and ``mendline routes test`` alike:
    ``severity``, ``kind``, ``service``, ``environment`` and ``tag:<name>`` (each tag's value
    as text). Unknown ones are left out: they match as ""."""
    labels = {"severity": severity, "kind": kind}
    if service:
        labels["service"] = service
    if environment:
        labels["environment"] = environment
    labels.update({f"{TAG_PREFIX}{name}": str(value) for name, value in (tags or {}).items()})
    return labels


def takes_digests(receiver: Receiver | None) -> bool:
    """Whether several alerts due together go to ``receiver`` as one message: Slack, a
    webhook (its payload lists alerts, as Alertmanager's does), and email unless its
    ``digest`` is off; PagerDuty has an incident per issue, a log a line per alert."""
    if receiver is None:
        return False
    return receiver.type in ("slack", "webhook") or (receiver.type == "email" and receiver.digest)


# -- delivery ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteTiming:
    """A route's timing, in seconds, and whether it updates what it sent."""

    group_wait: float
    group_interval: float
    repeat_interval: float
    send_updates: bool = True


@dataclass(frozen=True)
class GroupState:
    """A group's (one receiver on one route) recent past: when it last sent, and when its
    first message not sent yet (a ``new`` one, not being sent) is due; ``None`` for none."""

    last_sent_at: datetime | None = None
    waiting_due_at: datetime | None = None


#: A group that never sent and has nothing waiting.
NO_GROUP = GroupState()


@dataclass(frozen=True)
class DeliveryDecision:
    """What one receiver gets of one trigger, when, and why.

    ``due_at`` is when it may be sent (``wait`` after the decision); ``wait_finding`` says it
    may go earlier, as soon as its finding is in. A ``suppressed`` one is recorded, not sent.
    """

    mode: DeliveryMode
    due_at: datetime
    wait: timedelta
    wait_finding: bool
    reasons: tuple[str, ...]


def decide_delivery(
    kind: str,
    timing: RouteTiming,
    now: datetime,
    *,
    told_at: datetime | None = None,
    pending: bool = False,
    digests: bool = False,
    group: GroupState = NO_GROUP,
    ignored: bool = False,
) -> DeliveryDecision:
    """Decide what a receiver that the routes reach gets of a trigger of ``kind``.

    ``told_at`` is when it was last sent a message about the issue (``None``: never),
    ``pending`` whether one is waiting to be sent to it, ``digests`` whether it takes digests,
    ``group`` its group's recent past on this route, and ``ignored`` whether the issue is
    ignored now (nothing is sent about it but the end of an incident).
    """
    mode, reasons = _mode(kind, timing, now, told_at, pending, ignored)
    wait = timing.group_wait if mode == "new" else 0.0
    due = now + timedelta(seconds=wait)
    if wait > 0:
        reasons += (f"waits group_wait {format_duration(wait)}: what comes meanwhile joins it",)
    pushed = False
    # A suppressed alert is recorded as a "new" row due now, and a "new" row to a digest
    # receiver gets its group's timing (its due time shows in the alert_deliveries view).
    if digests and mode in ("new", "suppressed"):
        due, pushed, why = _digest_due(due, timing, now, group)
        reasons += why if mode == "new" else ()
    wait_finding = mode == "new" and kind in _WAITS_FOR_FINDING and wait > 0 and not pushed
    if wait_finding:
        reasons += ("goes earlier when its finding is in",)
    return DeliveryDecision(mode, due, due - now, wait_finding, reasons)


def _mode(
    kind: str,
    timing: RouteTiming,
    now: datetime,
    told_at: datetime | None,
    pending: bool,
    ignored: bool,
) -> tuple[DeliveryMode, tuple[str, ...]]:
    if kind in ENDS_INCIDENT:
        # Chosen by resolve_audience: whoever was told hears it is over.
        return "repeat", (f"{kind}: it was told of the issue, so it hears it is over",)
    if ignored:
        # Ignored after the trigger was made: the escalating alert tells when it is back.
        return "suppressed", ("the issue is ignored: nothing is sent until it escalates",)
    if kind in _ALWAYS_NOTIFIES:
        # Resolved and back, down again, flapping: always worth telling, in the first
        # message's thread.
        what = _ALWAYS_NOTIFIES[kind]
        if told_at is None:
            return "new", (f"{what} always notifies; not told of the issue before",)
        return "repeat", (f"{what} always notifies, in the first message's thread",)
    if pending:
        # The message waiting carries the latest counts; a second "new" one would be a storm.
        return "suppressed", ("a message about the issue is waiting to be sent already",)
    if told_at is not None and told_at > now - timedelta(seconds=timing.repeat_interval):
        told = f"told {_between(told_at, now)} ago, within repeat_interval"
        told += f" {format_duration(timing.repeat_interval)}"
        if timing.send_updates:
            return "update", (told, "the route sends updates: what was sent is updated")
        return "suppressed", (told, "the route sends no updates")
    if told_at is None:
        return "new", ("not told of the issue yet",)
    return "repeat", (
        f"told {_between(told_at, now)} ago: repeat_interval"
        f" {format_duration(timing.repeat_interval)} has passed",
    )


def _digest_due(
    due: datetime, timing: RouteTiming, now: datetime, group: GroupState
) -> tuple[datetime, bool, tuple[str, ...]]:
    reasons: tuple[str, ...] = ()
    pushed = False
    interval = timedelta(seconds=timing.group_interval)
    if group.last_sent_at is not None and group.last_sent_at + interval > due:
        # What comes meanwhile goes as one digest: a finding may not bring it forward.
        due = group.last_sent_at + interval
        pushed = True
        reasons += (
            f"its group sent {_between(group.last_sent_at, now)} ago:"
            f" waits out group_interval {format_duration(timing.group_interval)} for one digest",
        )
    # A group's first message waits group_wait from its first alert, not each alert its own.
    if group.waiting_due_at is not None and group.waiting_due_at < due:
        due = group.waiting_due_at
        reasons += (f"joins its group's message due in {_between(now, due)}, as one digest",)
    return due, pushed, reasons


def resolve_audience(
    told: Iterable[str], pending: Iterable[str], withdrawn: Iterable[str]
) -> tuple[str, ...]:
    """Who hears that an issue is resolved (or a check is up again: ``ENDS_INCIDENT``), in
    order: every receiver ``told`` of it, and those
    with a message ``pending`` that was not ``withdrawn`` (being sent right now: they will have
    been told, and hear of the resolve after it), whatever the routes say now."""
    return tuple(sorted(set(told) | (set(pending) - set(withdrawn))))


# -- a finding after the alert -------------------------------------------------------------


@dataclass(frozen=True)
class SentMessage:
    """A receiver's message about a trigger (not an update), as a late finding finds it."""

    receiver: str
    status: str  # pending, delivered, suppressed, failed, dead
    sending: bool  # leased by a worker right now
    carried_finding: bool
    send_updates: bool  # its route, still in the routes file, sends updates


@dataclass(frozen=True)
class FollowUp:
    """What a finding that arrived after its trigger was routed changes.

    ``later``: a message is being sent right now, perhaps without the finding; decide on the
    next pass. ``updates``: the receivers whose message is updated, each with its decision.
    ``reroute``: the finding raised the severity, so the routes are walked again for
    receivers not in ``told``.
    """

    later: bool
    updates: tuple[tuple[str, DeliveryDecision], ...]
    reroute: bool
    told: frozenset[str] = field(default_factory=frozenset)
    reasons: tuple[str, ...] = ()


def follow_finding(
    sent: Sequence[SentMessage],
    *,
    severity: AlertSeverity,
    routed_severity: str | None,
    now: datetime,
    kind: str = "new_issue",
    resolved: bool = False,
) -> FollowUp:
    """Decide what a late finding changes: update each message delivered without it whose
    route sends updates (now), and route again when ``severity`` (with the finding) is above
    the ``routed_severity`` the trigger was routed with.

    A check's trigger (``kind`` in HEALTH_KINDS) whose issue is ``resolved`` by now (the
    check is up again) changes nothing: an update would page PagerDuty again for an
    incident its recovery resolved."""
    if kind in HEALTH_KINDS and resolved:
        return FollowUp(
            later=False,
            updates=(),
            reroute=False,
            reasons=("the check is up again: what was sent about it going down stays",),
        )
    if any(m.status == "pending" and m.sending for m in sent):
        return FollowUp(
            later=True,
            updates=(),
            reroute=False,
            reasons=("a message is being sent right now: decided on the next pass",),
        )
    # Not delivered yet: it will carry the finding. Carried it: nothing to add.
    updates = tuple(
        (m.receiver, _update(now))
        for m in sent
        if m.status == "delivered" and not m.carried_finding and m.send_updates
    )
    routed = routed_severity or "info"
    reroute = ALERT_SEVERITIES.index(severity) > ALERT_SEVERITIES.index(routed)
    reasons = tuple(f"{receiver}: sent without the finding, updated" for receiver, _ in updates)
    if reroute:
        reasons += (f"the finding raised the severity from {routed} to {severity}: routed again",)
    return FollowUp(
        later=False,
        updates=updates,
        reroute=reroute,
        told=frozenset(m.receiver for m in sent),
        reasons=reasons or ("nothing to update, severity not raised",),
    )


def _update(now: datetime) -> DeliveryDecision:
    return DeliveryDecision(
        mode="update",
        due_at=now,
        wait=timedelta(0),
        wait_finding=False,
        reasons=("sent without its finding; the route sends updates",),
    )


def _between(earlier: datetime, later: datetime) -> str:
    """The time from ``earlier`` to ``later`` for a reason, in whole seconds and never below
    0s (a clock read at the start of a transaction may be behind a row it then reads)."""
    return format_duration(max(0, round((later - earlier).total_seconds())))
