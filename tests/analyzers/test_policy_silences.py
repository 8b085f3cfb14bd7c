"""Silences' matchers over an alert's labels, as Alertmanager decides them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mendline.analyzers.policy import Silence, parse_matcher, silence_for

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LABELS = {
    "severity": "error",
    "kind": "new_issue",
    "service": "api",
    "environment": "production",
    "tag:team": "payments",
}


@pytest.mark.parametrize(
    ("matcher", "matches"),
    [
        ("service=api", True),
        ("service=ap", False),
        ("service!=api", False),
        ("service!=web", True),
        ("severity=~error|critical", True),
        ("severity=~err", False),  # the whole value, as in Alertmanager
        ("severity!~warning|info", True),
        ("severity!~e.*", False),
        ("tag:team=payments", True),
        ("tag:region=", True),  # a missing label is ""
        ("tag:region!=eu", True),
        ("tag:region=~.+", False),
        ("environment=~prod.*", True),
        (" service = api ", True),
    ],
)
def test_a_matcher_over_the_labels(matcher: str, matches: bool) -> None:
    assert parse_matcher(matcher).matches(LABELS) is matches


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("service", "is not a matcher"),
        ("=api", "is not a matcher"),
        ("team=payments", "unknown label 'team'"),
        ("service=~(api", "not a regular expression"),
        (r"tag:user=~(a)\1", "not a regular expression: invalid escape sequence"),
        ("tag:user=~a(?=b)", "not a regular expression"),
    ],
)
def test_a_bad_matcher_says_why(text: str, said: str) -> None:
    with pytest.raises(ValueError, match=said.replace("(", r"\(")):
        parse_matcher(text)


@pytest.mark.parametrize(("value", "matches"), [("a" * 4000, False), ("a" * 4000 + "b", True)])
@pytest.mark.timeout(30)
def test_a_pattern_that_backtracks_in_python_is_linear(value: str, matches: bool) -> None:
    # Python's re takes exponential time on this pattern and value (a value a producer
    # sends); RE2 answers at once.
    assert parse_matcher("tag:user=~(a|aa)*b").matches({"tag:user": value}) is matches


def silence(
    id: int, *matchers: str, start: int = -60, end: int = 60, expired: bool = False
) -> Silence:
    return Silence(
        id=id,
        matchers=tuple(parse_matcher(m) for m in matchers),
        starts_at=NOW + timedelta(minutes=start),
        ends_at=NOW + timedelta(minutes=end),
        created_by="rita",
        comment="deploying",
        expired_at=NOW - timedelta(minutes=1) if expired else None,
    )


@pytest.mark.parametrize(
    ("silences", "kind", "held_by"),
    [
        ([silence(1, "service=api")], "new_issue", 1),
        ([silence(1, "service=api", "severity=critical")], "new_issue", None),  # all must match
        ([silence(2, "service=api"), silence(1, "tag:team=payments")], "new_issue", 1),
        ([silence(1, "service=api", start=5)], "new_issue", None),  # not started yet
        ([silence(1, "service=api", end=0)], "new_issue", None),  # ended at now
        ([silence(1, "service=api", expired=True)], "new_issue", None),
        ([silence(1, "service=api")], "resolved", None),  # the end of an incident is told
        ([silence(1, "service=api")], "health_recovered", None),
        ([silence(1, "service=api")], "regression", 1),
        ([], "new_issue", None),
    ],
)
def test_which_silence_holds_an_alert(
    silences: list[Silence], kind: str, held_by: int | None
) -> None:
    verdict = silence_for(silences, {**LABELS, "kind": kind}, kind, NOW)
    assert (verdict.silence.id if verdict.silence else None) == held_by
    if held_by is not None:
        assert verdict.reason.startswith(f"silenced by silence {held_by} (")
