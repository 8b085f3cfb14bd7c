"""The issue workflow's decisions, as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mendline.analyzers.triage import (
    IgnoreState,
    ResolvedState,
    ignore_ends,
    newest_release,
    release_is_newer,
    release_version,
    reopens,
)
from mendline.schemas.errors import ConfigError
from mendline.schemas.issue import IgnoreCondition, check_issue_move, parse_assignee

T0 = datetime(2026, 12, 1, tzinfo=UTC)
SEEN = {"abc123": T0, "def456": T0 + timedelta(hours=1), "2.0.0": T0 + timedelta(hours=2)}


@pytest.mark.parametrize(
    ("candidate", "baseline", "newer"),
    [
        ("1.2.4", "1.2.3", True),
        ("1.2.3", "1.2.4", False),
        ("1.10.0", "1.9.0", True),  # numbers, not text
        ("api@2.0.0", "api@1.9.9", True),
        ("v2", "1.9", True),
        ("1.2.3", "1.2.3-rc.1", True),  # a release after its pre-release
        ("1.2.3-rc.2", "1.2.3-rc.10", False),
        ("1.2.3", "1.2.3", False),
        (None, "1.2.3", False),  # no release: nothing says it runs the fixed code
        ("def456", "abc123", True),  # not versions: by first seen
        ("abc123", "def456", False),
        ("new-build", "abc123", True),  # never seen: it is new
        ("abc123", "unknown-build", False),
        ("2.0.0", "abc123", True),  # one version, one not: by first seen
    ],
)
def test_release_is_newer(candidate: str | None, baseline: str, newer: bool) -> None:
    assert release_is_newer(candidate, baseline, SEEN) is newer


@pytest.mark.parametrize(
    ("name", "is_version"),
    [("1", True), ("1.2.3.4", True), ("app@1.2", True), ("a1b2c3d", False), ("release-42", False)],
)
def test_release_version(name: str, is_version: bool) -> None:
    assert (release_version(name) is not None) is is_version


@pytest.mark.parametrize(
    ("resolution", "in_release", "releases", "reopened"),
    [
        ("now", None, ["1.0.0"], True),
        ("fix", None, [None], True),
        ("next_release", "1.0.0", ["1.0.0"], False),
        ("next_release", "1.0.0", ["0.9.0", None], False),  # late events of older releases
        ("next_release", "1.0.0", ["0.9.0", "1.0.1"], True),
        ("next_release", None, ["0.1"], True),  # nothing to compare with: as resolved now
    ],
)
def test_reopens(
    resolution: str, in_release: str | None, releases: list[str | None], reopened: bool
) -> None:
    assert reopens(ResolvedState(resolution, in_release), releases, SEEN) is reopened


NOW = T0 + timedelta(days=1)


@pytest.mark.parametrize(
    ("condition", "times_seen", "until_seen", "last_hour", "ends"),
    [
        (IgnoreCondition(), 10**9, None, 10**6, None),  # forever
        (IgnoreCondition(until=NOW - timedelta(seconds=1)), 1, None, 1, "ended"),
        (IgnoreCondition(until=NOW + timedelta(seconds=1)), 1, None, 1, None),
        (IgnoreCondition(events=100), 149, 150, 1, None),
        (IgnoreCondition(events=100), 150, 150, 1, "reached 150 events"),
        (IgnoreCondition(per_hour=50), 1000, None, 49, None),
        (IgnoreCondition(per_hour=50), 1000, None, 50, "last hour"),
        (IgnoreCondition(events=5, per_hour=50), 3, 10, 60, "last hour"),
    ],
)
def test_ignore_ends(
    condition: IgnoreCondition,
    times_seen: int,
    until_seen: int | None,
    last_hour: int,
    ends: str | None,
) -> None:
    why = ignore_ends(IgnoreState(condition, times_seen, until_seen, last_hour), NOW)
    if ends is None:
        assert why is None
    else:
        assert why is not None and ends in why


def test_ignore_condition_describes_itself_and_needs_aware_times() -> None:
    assert IgnoreCondition().describe() == "forever"
    both = IgnoreCondition(events=10, per_hour=5)
    assert both.describe() == "until 10 more events or until 5 events in an hour"
    with pytest.raises(ValueError, match="time zone"):
        IgnoreCondition(until=datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        IgnoreCondition(events=0)


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("user:alice", ("user", "alice")),
        ("alice", ("user", "alice")),
        ("team:payments", ("team", "payments")),
        ("team:Platform SRE", ("team", "Platform SRE")),
    ],
)
def test_parse_assignee(value: str, parsed: tuple[str, str]) -> None:
    assert parse_assignee(value) == parsed


@pytest.mark.parametrize("value", ["group:x", "user:", "team: x", "user:a\x1b[31m", "x" * 300])
def test_parse_assignee_refuses(value: str) -> None:
    with pytest.raises(ConfigError, match="user:NAME or team:LABEL"):
        parse_assignee(value)


@pytest.mark.parametrize(
    ("current", "wanted", "allowed"),
    [
        ("unresolved", "resolved", True),
        ("resolved", "unresolved", True),
        ("ignored", "unresolved", True),
        ("merged", "unresolved", True),
        ("merged", "resolved", False),
        ("merged", "ignored", False),
        ("unresolved", "unresolved", False),
    ],
)
def test_issue_moves(current: str, wanted: str, allowed: bool) -> None:
    if allowed:
        check_issue_move(current, wanted)  # type: ignore[arg-type]
    else:
        with pytest.raises(Exception, match="an issue that is"):
            check_issue_move(current, wanted)  # type: ignore[arg-type]


H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("seen", "newest"),
    [
        ({}, None),
        ({"1.0.0": T0}, "1.0.0"),
        ({"2.0.0": T0, "1.9.1": T0 + H}, "2.0.0"),  # a hotfix of the older line, seen last
        ({"2.0.0-rc.1": T0 + H, "1.9.0": T0}, "2.0.0-rc.1"),
        ({"build-b7": T0, "build-a3": T0 + H}, "build-a3"),  # not versions: by first seen
    ],
)
def test_newest_release(seen: dict[str, datetime], newest: str | None) -> None:
    assert newest_release(seen) == newest
