"""Alert decisions as tables: severity, labels, who hears what and when, and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mendline.analyzers.policy import (
    NO_GROUP,
    SEVERITY_RAISE_CONFIDENCE,
    GroupState,
    RouteTiming,
    SentMessage,
    alert_labels,
    alert_severity,
    decide_delivery,
    finding_severity,
    follow_finding,
    higher_severity,
    resolve_audience,
    takes_digests,
)
from mendline.schemas.alert import EmailReceiver, PagerDutyReceiver, SlackReceiver
from mendline.schemas.finding import Severity

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HOUR = 3600.0
# Alertmanager's defaults, as the shipped routes have them.
TIMING = RouteTiming(group_wait=30.0, group_interval=300.0, repeat_interval=4 * HOUR)
NO_UPDATES = RouteTiming(
    group_wait=30.0, group_interval=300.0, repeat_interval=4 * HOUR, send_updates=False
)
NO_WAIT = RouteTiming(group_wait=0.0, group_interval=300.0, repeat_interval=4 * HOUR)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


# -- severity ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "finding", "kind", "expected"),
    [
        ("critical", None, "new_issue", "critical"),
        ("error", None, "new_issue", "error"),
        ("warning", None, "new_issue", "warning"),
        ("info", None, "new_issue", "info"),
        ("debug", None, "new_issue", "info"),
        ("error", "critical", "new_issue", "critical"),  # the finding says it is worse
        ("warning", "high", "new_issue", "error"),
        ("warning", "critical", "new_issue", "critical"),
        ("error", "low", "new_issue", "error"),  # a finding never lowers it
        ("critical", "medium", "new_issue", "critical"),
        ("warning", None, "frequency", "error"),  # a spike: one step up
        ("info", None, "regression", "warning"),
        ("warning", None, "regression", "error"),
        ("error", None, "frequency", "error"),  # ...but never to paging by itself
        ("critical", None, "regression", "critical"),
        ("warning", None, "resolved", "warning"),  # a resolve is not raised
        ("info", "high", "frequency", "error"),  # high raises it to error; a spike not past error
        # A check's alert has the severity its checks file gives (the level).
        ("critical", None, "health_down", "critical"),
        ("warning", None, "health_down", "warning"),
        ("warning", "critical", "health_down", "warning"),  # a finding does not raise it
        ("error", "high", "health_flapping", "error"),
        ("info", None, "health_flapping", "info"),  # not raised like a spike
        ("critical", None, "health_recovered", "critical"),
        # A remediation that did not help: its issue's level, like the check's own alerts.
        ("critical", None, "remediation_failed", "critical"),
        ("warning", "critical", "remediation_failed", "warning"),
        ("error", None, "remediation_failed", "error"),
    ],
)
def test_alert_severity(level: str, finding: str | None, kind: str, expected: str) -> None:
    assert alert_severity(level, finding, kind) == expected


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("warning", "critical", "critical"),  # a finding raised it meanwhile
        ("critical", "warning", "critical"),  # never lowered
        ("error", "error", "error"),
        ("info", "warning", "warning"),
    ],
)
def test_higher_severity(first: str, second: str, expected: str) -> None:
    assert higher_severity(first, second) == expected  # type: ignore[arg-type]


# -- labels --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(
            {"severity": "error", "kind": "new_issue"},
            {"severity": "error", "kind": "new_issue"},
            id="only what is known",
        ),
        pytest.param(
            {
                "severity": "critical",
                "kind": "regression",
                "service": "api",
                "environment": "production",
            },
            {
                "severity": "critical",
                "kind": "regression",
                "service": "api",
                "environment": "production",
            },
            id="service and environment",
        ),
        pytest.param(
            {"severity": "warning", "kind": "frequency", "service": "api", "environment": ""},
            {"severity": "warning", "kind": "frequency", "service": "api"},
            id="an empty environment is left out (it matches as empty)",
        ),
        pytest.param(
            {"severity": "info", "kind": "resolved", "service": None, "environment": None},
            {"severity": "info", "kind": "resolved"},
            id="none is left out",
        ),
        pytest.param(
            {"severity": "error", "kind": "new_issue", "tags": {"team": "payments"}},
            {"severity": "error", "kind": "new_issue", "tag:team": "payments"},
            id="a tag is a tag: label",
        ),
        pytest.param(
            {"severity": "error", "kind": "new_issue", "tags": {"shard": 3, "canary": True}},
            {"severity": "error", "kind": "new_issue", "tag:shard": "3", "tag:canary": "True"},
            id="tag values from an event's JSON are text",
        ),
    ],
)
def test_alert_labels(given: dict[str, object], expected: dict[str, str]) -> None:
    assert alert_labels(**given) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("receiver", "expected"),
    [
        (SlackReceiver(type="slack", webhook_url_env="W"), True),
        (EmailReceiver(type="email", smtp_host="h", sender="a@b", to=["c@d"]), True),
        (EmailReceiver(type="email", smtp_host="h", sender="a@b", to=["c@d"], digest=False), False),
        (PagerDutyReceiver(type="pagerduty", routing_key_env="K"), False),  # incident per issue
        (None, False),  # a receiver gone from the file
    ],
)
def test_takes_digests(receiver: object, expected: bool) -> None:
    assert takes_digests(receiver) is expected  # type: ignore[arg-type]


# -- delivery ------------------------------------------------------------------------------

# Each row: the trigger and what is known of the receiver and its group; the decision it gets
# (mode, seconds until due, whether it may go early with its finding) and a word of its reasons.
DELIVERIES = [
    pytest.param(
        "new_issue",
        {},
        ("new", 30.0, True, "not told"),
        id="new: never told, waits group_wait for its finding",
    ),
    pytest.param(
        "new_issue",
        {"timing": NO_WAIT},
        ("new", 0.0, False, "not told"),
        id="new without group_wait: due now, nothing to wait for",
    ),
    pytest.param(
        "frequency",
        {},
        ("new", 30.0, False, "not told"),
        id="a spike for a receiver never told is new, but waits for no finding",
    ),
    pytest.param(
        "frequency",
        {"told_at": ago(5 * HOUR)},
        ("repeat", 0.0, False, "has passed"),
        id="repeat: repeat_interval passed since it was told",
    ),
    pytest.param(
        "new_issue",
        {"told_at": ago(4 * HOUR)},
        ("repeat", 0.0, False, "has passed"),
        id="repeat: told exactly repeat_interval ago",
    ),
    pytest.param(
        "frequency",
        {"told_at": ago(HOUR)},
        ("update", 0.0, False, "sends updates"),
        id="update: told within repeat_interval, the route sends updates",
    ),
    pytest.param(
        "frequency",
        {"told_at": ago(HOUR), "timing": NO_UPDATES},
        ("suppressed", 0.0, False, "no updates"),
        id="suppressed: told within repeat_interval, the route sends no updates",
    ),
    pytest.param(
        "frequency",
        {"told_at": ago(HOUR), "pending": True},
        ("suppressed", 0.0, False, "waiting to be sent"),
        id="suppressed: a message is pending (it carries the counts), updates or not",
    ),
    pytest.param(
        "frequency",
        {"pending": True},
        ("suppressed", 0.0, False, "waiting to be sent"),
        id="suppressed: never told but its first message is pending",
    ),
    pytest.param(
        "frequency",
        {"told_at": ago(5 * HOUR), "pending": True},
        ("suppressed", 0.0, False, "waiting to be sent"),
        id="suppressed: pending outweighs repeat_interval having passed",
    ),
    pytest.param(
        "regression",
        {},
        ("new", 30.0, True, "regression always notifies"),
        id="regression: never told, new, waits for its finding",
    ),
    pytest.param(
        "regression",
        {"told_at": ago(60), "pending": True},
        ("repeat", 0.0, False, "regression always notifies"),
        id="regression: always notifies, even told a minute ago and pending",
    ),
    pytest.param(
        "resolved",
        {"told_at": ago(60), "pending": True},
        ("repeat", 0.0, False, "resolved"),
        id="resolved: who was told hears it, at once",
    ),
    pytest.param(
        "resolved",
        {"digests": True, "group": GroupState(ago(60), later(10))},
        ("repeat", 0.0, False, "resolved"),
        id="resolved: no digest timing",
    ),
    pytest.param(
        "health_down",
        {},
        ("new", 30.0, False, "a check going down always notifies; not told"),
        id="health_down: never told, new after group_wait, does not wait for a finding",
    ),
    pytest.param(
        "health_down",
        {"timing": NO_WAIT},
        ("new", 0.0, False, "not told of the issue before"),
        id="health_down: a route with group_wait 0s sends it at once",
    ),
    pytest.param(
        "health_down",
        {"told_at": ago(60), "pending": True, "timing": NO_UPDATES},
        ("repeat", 0.0, False, "in the first message's thread"),
        id="health_down: down again, told a minute ago: always notifies, in the thread",
    ),
    pytest.param(
        "health_down",
        {"digests": True, "group": GroupState(last_sent_at=ago(60))},
        ("new", 240.0, False, "group_interval"),
        id="health_down: a digest receiver's group timing holds as for any first message",
    ),
    pytest.param(
        "health_recovered",
        {"told_at": ago(60), "pending": True},
        ("repeat", 0.0, False, "health_recovered: it was told of the issue"),
        id="health_recovered: who was told hears it is up, at once",
    ),
    pytest.param(
        "health_recovered",
        {"digests": True, "group": GroupState(ago(60), later(10))},
        ("repeat", 0.0, False, "hears it is over"),
        id="health_recovered: no digest timing",
    ),
    pytest.param(
        "health_flapping",
        {},
        ("new", 30.0, False, "a check starting to flap always notifies"),
        id="health_flapping: never told: one new message",
    ),
    pytest.param(
        "health_flapping",
        {"told_at": ago(60), "timing": NO_UPDATES},
        ("repeat", 0.0, False, "in the first message's thread"),
        id="health_flapping: told a minute ago, no updates: still told, in the thread",
    ),
    pytest.param(
        "remediation_failed",
        {"told_at": ago(60), "timing": NO_UPDATES},
        ("repeat", 0.0, False, "a remediation that did not help always notifies"),
        id="remediation_failed: told of the outage a minute ago: told, in its thread",
    ),
    pytest.param(
        "remediation_failed",
        {"pending": True},
        ("new", 30.0, False, "not told of the issue before"),
        id="remediation_failed: never told: a new message, whatever waits",
    ),
    pytest.param(
        "new_issue",
        {"digests": True, "group": GroupState(last_sent_at=ago(60))},
        ("new", 240.0, False, "group_interval"),
        id="digest: the group sent a minute ago, waits out group_interval, finding or not",
    ),
    pytest.param(
        "new_issue",
        {"digests": False, "group": GroupState(last_sent_at=ago(60))},
        ("new", 30.0, True, "not told"),
        id="no digests (PagerDuty): the group's last send does not delay it",
    ),
    pytest.param(
        "new_issue",
        {"digests": True, "group": GroupState(last_sent_at=ago(600))},
        ("new", 30.0, True, "not told"),
        id="digest: group_interval has passed, group_wait only",
    ),
    pytest.param(
        "new_issue",
        {"digests": True, "group": GroupState(last_sent_at=ago(280))},
        ("new", 30.0, True, "not told"),
        id="digest: group_interval ends before group_wait does, group_wait only",
    ),
    pytest.param(
        "new_issue",
        {"digests": True, "group": GroupState(waiting_due_at=later(10))},
        ("new", 10.0, True, "joins its group's message"),
        id="digest: joins the group's message already waiting, due sooner",
    ),
    pytest.param(
        "new_issue",
        {"digests": False, "group": GroupState(waiting_due_at=later(10))},
        ("new", 30.0, True, "not told"),
        id="no digests (PagerDuty): joins no group",
    ),
    pytest.param(
        "new_issue",
        {"digests": True, "group": GroupState(waiting_due_at=later(45))},
        ("new", 30.0, True, "not told"),
        id="digest: a group message due later is not waited for",
    ),
    pytest.param(
        "new_issue",
        {"digests": True, "group": GroupState(last_sent_at=ago(60), waiting_due_at=later(100))},
        ("new", 100.0, False, "joins its group's message"),
        id="digest: pushed by group_interval, then joins the message waiting (no finding wait)",
    ),
    pytest.param(
        "frequency",
        {
            "told_at": ago(HOUR),
            "pending": True,
            "digests": True,
            "group": GroupState(last_sent_at=ago(60)),
        },
        ("suppressed", 240.0, False, "waiting to be sent"),
        id="suppressed: recorded with the due time a new one would have had",
    ),
    pytest.param(
        "frequency",
        {"told_at": ago(5 * HOUR), "digests": True, "group": GroupState(ago(60), later(10))},
        ("repeat", 0.0, False, "has passed"),
        id="repeat: not delayed by its group",
    ),
    pytest.param(
        "frequency",
        {"told_at": ago(HOUR), "digests": True, "group": GroupState(ago(60), later(10))},
        ("update", 0.0, False, "sends updates"),
        id="update: not delayed by its group",
    ),
    pytest.param(
        "new_issue",
        {"ignored": True},
        ("suppressed", 0.0, False, "the issue is ignored"),
        id="ignored before its first alert was routed: suppressed",
    ),
    pytest.param(
        "regression",
        {"ignored": True, "told_at": ago(5 * HOUR)},
        ("suppressed", 0.0, False, "the issue is ignored"),
        id="ignored: even what always notifies",
    ),
]


@pytest.mark.parametrize(("kind", "facts", "expected"), DELIVERIES)
def test_decide_delivery(
    kind: str, facts: dict[str, object], expected: tuple[str, float, bool, str]
) -> None:
    mode, wait, wait_finding, because = expected
    timing = facts.pop("timing", TIMING)
    decision = decide_delivery(kind, timing, NOW, **facts)  # type: ignore[arg-type]
    assert decision.mode == mode
    assert decision.wait == timedelta(seconds=wait)
    assert decision.due_at == NOW + timedelta(seconds=wait)
    assert decision.wait_finding is wait_finding
    assert any(because in reason for reason in decision.reasons), decision.reasons


def test_a_joined_group_message_is_due_at_the_same_instant() -> None:
    # The claim takes a group's alerts together by an equal due time: no rounding on the way.
    waiting = NOW + timedelta(seconds=12, microseconds=345_678)
    decision = decide_delivery(
        "new_issue", TIMING, NOW, digests=True, group=GroupState(None, waiting)
    )
    assert decision.due_at == waiting


def test_a_decision_to_wait_for_the_finding_says_so() -> None:
    decision = decide_delivery("new_issue", TIMING, NOW, group=NO_GROUP)
    assert decision.wait_finding
    assert any("group_wait 30s" in reason for reason in decision.reasons)
    assert any("finding is in" in reason for reason in decision.reasons)


# -- a resolve -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("told", "pending", "withdrawn", "expected"),
    [
        pytest.param({"slack"}, set(), set(), ("slack",), id="who was told hears it"),
        pytest.param(set(), {"slack"}, {"slack"}, (), id="a message withdrawn was never sent"),
        pytest.param(
            set(), {"pager"}, set(), ("pager",), id="a message being sent: told, so hears it"
        ),
        pytest.param(
            {"slack"}, {"slack"}, {"slack"}, ("slack",), id="told before, its follow-up withdrawn"
        ),
        pytest.param(
            {"slack", "email"},
            {"pager", "team"},
            {"team"},
            ("email", "pager", "slack"),
            id="all of them, in order",
        ),
        pytest.param(set(), set(), set(), (), id="nobody told, nobody hears"),
    ],
)
def test_resolve_audience(
    told: set[str], pending: set[str], withdrawn: set[str], expected: tuple[str, ...]
) -> None:
    assert resolve_audience(told, pending, withdrawn) == expected


# -- a finding after the alert -------------------------------------------------------------


def sent(
    receiver: str,
    status: str = "delivered",
    *,
    sending: bool = False,
    carried: bool = False,
    updates: bool = True,
) -> SentMessage:
    return SentMessage(receiver, status, sending, carried, updates)


@pytest.mark.parametrize(
    ("messages", "severity", "routed", "expected"),
    [
        pytest.param(
            [sent("slack")],
            "error",
            "error",
            (False, ("slack",), False, "sent without"),
            id="delivered without the finding: updated",
        ),
        pytest.param(
            [sent("slack", carried=True)],
            "error",
            "error",
            (False, (), False, "nothing"),
            id="it carried the finding: nothing to update",
        ),
        pytest.param(
            [sent("slack", updates=False)],
            "error",
            "error",
            (False, (), False, "nothing"),
            id="the route sends no updates (or is gone)",
        ),
        pytest.param(
            [sent("slack", "pending")],
            "error",
            "error",
            (False, (), False, "nothing"),
            id="still waiting: it will carry the finding",
        ),
        pytest.param(
            [sent("slack", "suppressed")],
            "error",
            "error",
            (False, (), False, "nothing"),
            id="suppressed: nothing was sent to update",
        ),
        pytest.param(
            [sent("slack", sending=True)],
            "error",
            "error",
            (False, ("slack",), False, "sent without"),
            id="a lease left on a delivered message holds nothing back",
        ),
        pytest.param(
            [sent("slack"), sent("pager", "pending", sending=True)],
            "critical",
            "error",
            (True, (), False, "right now"),
            id="a message being sent right now: decided on the next pass",
        ),
        pytest.param(
            [sent("slack", carried=True)],
            "critical",
            "error",
            (False, (), True, "from error to critical"),
            id="the finding raised the severity: routed again",
        ),
        pytest.param(
            [sent("slack")],
            "critical",
            "error",
            (False, ("slack",), True, "from error to critical"),
            id="updated and routed again",
        ),
        pytest.param(
            [],
            "warning",
            None,
            (False, (), True, "from info to warning"),
            id="routed without a severity counts as info",
        ),
        pytest.param(
            [sent("slack", carried=True)],
            "error",
            "critical",
            (False, (), False, "nothing"),
            id="a lower severity routes nothing again",
        ),
    ],
)
def test_follow_finding(
    messages: list[SentMessage],
    severity: str,
    routed: str | None,
    expected: tuple[bool, tuple[str, ...], bool, str],
) -> None:
    later_, updated, reroute, because = expected
    follow = follow_finding(
        messages,
        severity=severity,  # type: ignore[arg-type]
        routed_severity=routed,
        now=NOW,
    )
    assert follow.later is later_
    assert tuple(receiver for receiver, _ in follow.updates) == updated
    assert follow.reroute is reroute
    assert any(because in reason for reason in follow.reasons), follow.reasons
    for _, decision in follow.updates:
        assert (decision.mode, decision.due_at, decision.wait_finding) == ("update", NOW, False)
        assert decision.reasons
    if not later_:  # routed again, it skips who has a message about the trigger already
        assert follow.told == {m.receiver for m in messages}


@pytest.mark.parametrize(
    ("kind", "resolved", "updated", "because"),
    [
        ("health_down", False, ("pager", "slack"), "sent without"),
        ("health_down", True, (), "the check is up again"),  # no new page for a closed one
        ("new_issue", True, ("pager", "slack"), "sent without"),  # errors as before
    ],
)
def test_a_late_finding_on_a_check_up_again_updates_nothing(
    kind: str, resolved: bool, updated: tuple[str, ...], because: str
) -> None:
    follow = follow_finding(
        [sent("pager"), sent("slack")],
        severity="critical",
        routed_severity="critical",
        now=NOW,
        kind=kind,
        resolved=resolved,
    )
    assert tuple(receiver for receiver, _ in follow.updates) == updated
    assert not follow.later and not follow.reroute
    assert any(because in reason for reason in follow.reasons), follow.reasons


@pytest.mark.parametrize(
    ("told_at", "said"),
    [
        (NOW - timedelta(seconds=182, milliseconds=500), "told 3m2s ago"),  # whole seconds
        (NOW + timedelta(milliseconds=300), "told 0s ago"),  # a clock behind the row: not < 0
    ],
)
def test_a_reason_tells_elapsed_time_in_whole_seconds_never_below_zero(
    told_at: datetime, said: str
) -> None:
    decision = decide_delivery("frequency", TIMING, NOW, told_at=told_at)
    assert decision.mode == "update"
    assert decision.reasons[0].startswith(said), decision.reasons


# -- the severity an LLM's finding may keep ------------------------------------------------


@pytest.mark.parametrize(
    ("level", "severity", "confidence", "heuristic", "kept", "capped"),
    [
        # At or below the issue's own level: kept, whatever the confidence.
        ("error", "high", 0.1, "low", "high", False),
        ("error", "low", 0.1, "low", "low", False),
        ("warning", "medium", 0.0, "low", "medium", False),
        ("critical", "critical", 0.2, "low", "critical", False),
        # Above it: only with high confidence and the heuristic's agreement.
        ("error", "critical", 0.95, "critical", "critical", False),
        ("warning", "high", SEVERITY_RAISE_CONFIDENCE, "high", "high", False),
        ("error", "critical", 0.95, "high", "high", True),  # the heuristic does not agree
        ("error", "critical", 0.79, "critical", "high", True),  # not confident enough
        ("warning", "critical", 0.5, "medium", "medium", True),  # neither
        ("info", "high", 1.0, "medium", "low", True),
        ("debug", "medium", 0.3, "medium", "low", True),
        ("mystery", "critical", 0.2, "low", "high", True),  # an unknown level counts as error
    ],
)
def test_finding_severity(
    level: str, severity: Severity, confidence: float, heuristic: Severity, kept: str, capped: bool
) -> None:
    decision = finding_severity(level, severity, confidence, heuristic)
    assert (decision.severity, decision.capped) == (kept, capped)
    assert decision.reason


def test_a_capped_finding_does_not_raise_the_alert() -> None:
    decision = finding_severity("warning", "critical", 0.4, "medium")
    assert alert_severity("warning", decision.severity, "new_issue") == "warning"
    assert alert_severity("warning", "critical", "new_issue") == "critical"  # uncapped would
