"""The issue workflow's decisions: is a release newer, does an event reopen a resolved issue,
does an ignored issue come back. Pure: the store reads, these decide."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from mendline.schemas.issue import IgnoreCondition

__all__ = [
    "IgnoreState",
    "ResolvedState",
    "ignore_ends",
    "newest_release",
    "release_is_newer",
    "release_version",
    "reopens",
]

# "1.2.3", "v1.2", "api@2.0.1-rc.1", "myapp@1.4.0+build5": an optional package before "@",
# an optional "v", dotted numbers, an optional pre-release after "-" and build after "+".
_VERSION = re.compile(
    r"^(?:[^@\s]+@)?v?(?P<nums>\d{1,9}(?:\.\d{1,9}){0,3})"
    r"(?:-(?P<pre>[0-9A-Za-z.-]{1,64}))?(?:\+[0-9A-Za-z.-]{1,64})?$"
)

_Version = tuple[tuple[int, ...], int, tuple[tuple[int, int | str], ...]]


def release_version(release: str) -> _Version | None:
    """A release name as a sortable version (semver's order: a pre-release sorts before its
    release, numeric identifiers before others), or None when it is not a version number
    (a commit hash, a date, a build name)."""
    match = _VERSION.match(release)
    if match is None:
        return None
    nums = tuple(int(n) for n in match.group("nums").split("."))
    nums = nums + (0,) * (4 - len(nums))
    pre = match.group("pre")
    if pre is None:
        return nums, 1, ()
    parts = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    return nums, 0, parts


def release_is_newer(
    candidate: str | None, baseline: str, first_seen: Mapping[str, datetime]
) -> bool:
    """Whether release ``candidate`` comes after ``baseline``, as Sentry orders them: by
    version when both are version numbers, else by when each release's first event arrived
    (``first_seen``; a release not in it is new, so newer). An event without a release is not
    newer: nothing says it runs the fixed code."""
    if candidate is None or candidate == baseline:
        return False
    new_version, old_version = release_version(candidate), release_version(baseline)
    if new_version is not None and old_version is not None:
        return new_version > old_version
    new_seen, old_seen = first_seen.get(candidate), first_seen.get(baseline)
    if new_seen is None:
        return True
    if old_seen is None:
        return False
    return new_seen > old_seen


def newest_release(first_seen: Mapping[str, datetime]) -> str | None:
    """The newest of a service's releases (each with when its first event arrived), in the
    order ``release_is_newer`` compares them: by version among version numbers (a hotfix of
    an older line seen last is not the newest), else by first seen. None without releases."""
    newest: str | None = None
    for release in sorted(first_seen, key=lambda r: (first_seen[r], r)):
        if newest is None or release_is_newer(release, newest, first_seen):
            newest = release
    return newest


@dataclass(frozen=True)
class ResolvedState:
    """A resolved issue as the consumer's batch reads it."""

    resolution: str | None
    resolved_in_release: str | None


def reopens(
    state: ResolvedState, releases: list[str | None], first_seen: Mapping[str, datetime]
) -> bool:
    """Whether events of these ``releases`` reopen a resolved issue (a regression). Resolved
    now or by a fix: any event does. Resolved in the next release: only an event of a release
    newer than the one that was current when it was resolved; an event of that release or an
    older one (a late event, a host not yet upgraded) does not."""
    if state.resolution != "next_release" or state.resolved_in_release is None:
        return True
    baseline = state.resolved_in_release
    return any(release_is_newer(r, baseline, first_seen) for r in releases)


@dataclass(frozen=True)
class IgnoreState:
    """An ignored issue as the consumer's batch reads it: its condition, and what it counts
    once the batch is added."""

    condition: IgnoreCondition
    times_seen: int
    until_seen: int | None
    last_hour: int


def ignore_ends(state: IgnoreState, now: datetime) -> str | None:
    """Why an ignored issue's ignore ends with the batch that brought it to ``state`` (an
    event arrived after its time; its count reached the mark; an hour held the rate), or
    None while it stays ignored."""
    condition = state.condition
    if condition.until is not None and now >= condition.until:
        return f"its ignore ended at {condition.until:%Y-%m-%d %H:%M %Z}".rstrip()
    if state.until_seen is not None and state.times_seen >= state.until_seen:
        return f"it reached {state.until_seen} events, the mark its ignore set"
    if condition.per_hour is not None and state.last_hour >= condition.per_hour:
        return f"{state.last_hour} events in the last hour (at least {condition.per_hour})"
    return None
