"""Issues in their workflow: the states and actions Sentry users know, the contract between
the store, the consumer's batch, the CLI and the dashboard.

An issue's ``status`` and, for an unresolved one, its ``substatus``::

    unresolved (substatus None, "regressed" or "escalating")
    resolved   (resolution "now", "next_release" or "fix")
    ignored    (until an ``IgnoreCondition`` is met, or forever)
    merged     (into another issue of the same service; final until unmerged)

What moves an issue (``TRANSITIONS``): people resolve, ignore, reopen, merge and unmerge;
events move it by themselves: a resolved issue seen again regresses (unless it was resolved
in the next release and the event's release is not newer), an ignored one whose condition is
met comes back as escalating.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mendline.schemas.errors import ConfigError
from mendline.schemas.transitions import check_move

__all__ = [
    "ISSUE_STATUSES",
    "LIST_STATUSES",
    "SUBSTATUSES",
    "TRANSITIONS",
    "IgnoreCondition",
    "IssueStatus",
    "ListStatus",
    "Resolution",
    "Substatus",
    "check_issue_move",
    "describe_state",
    "parse_assignee",
    "status_label",
]

IssueStatus = Literal["unresolved", "resolved", "ignored", "merged"]
#: Every status an issue can have, in the order people read them.
ISSUE_STATUSES: tuple[IssueStatus, ...] = ("unresolved", "resolved", "ignored", "merged")
Substatus = Literal["regressed", "escalating"]
#: Why an unresolved issue is back: it was resolved and seen again, or its ignore ended.
SUBSTATUSES: tuple[Substatus, ...] = ("regressed", "escalating")
#: How a resolved issue was resolved: by a person now, by a person "in the next release",
#: or by a fix that was verified in production.
Resolution = Literal["now", "next_release", "fix"]
ListStatus = Literal["unresolved", "regressed", "escalating", "resolved", "ignored", "all"]
#: What ``issues list --status`` (and the dashboard's tabs) choose between: a status, or an
#: unresolved issue's substatus; ``all`` is every issue but the merged ones.
LIST_STATUSES: tuple[ListStatus, ...] = (
    "unresolved",
    "regressed",
    "escalating",
    "resolved",
    "ignored",
    "all",
)

#: What a person may move an issue to from each status (the events' own moves, regressing
#: and escalating, go to unresolved too). ``merged -> unresolved`` is unmerge.
TRANSITIONS: dict[IssueStatus, frozenset[IssueStatus]] = {
    "unresolved": frozenset({"resolved", "ignored", "merged"}),
    "resolved": frozenset({"unresolved", "ignored", "merged"}),
    "ignored": frozenset({"unresolved", "resolved", "merged"}),
    "merged": frozenset({"unresolved"}),
}

_ASSIGNEE = re.compile(r"^(user|team):(\S.{0,199})$", re.DOTALL)


def check_issue_move(current: IssueStatus, wanted: IssueStatus) -> None:
    """Return when an issue that is ``current`` may become ``wanted``; else
    IllegalTransition naming both."""
    check_move(TRANSITIONS, current, wanted, "an issue")


def parse_assignee(value: str) -> tuple[Literal["user", "team"], str]:
    """``user:NAME`` or ``team:LABEL`` as its kind and name; ConfigError otherwise (a bare
    name is taken as a user)."""
    text = value if ":" in value else f"user:{value}"
    match = _ASSIGNEE.match(text)
    if match is None or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ConfigError(
            f"an assignee is user:NAME or team:LABEL (1 to 200 printable characters), not"
            f" {value[:60]!r}"
        )
    return match.group(1), match.group(2)  # type: ignore[return-value]


class IgnoreCondition(BaseModel):
    """When an ignored issue comes back (as escalating, with an alert): at its first event
    after ``until``, after ``events`` more events, or once ``per_hour`` events arrive within
    an hour; whichever comes first. None of them: ignored forever."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    until: datetime | None = None
    events: int | None = Field(default=None, ge=1)
    per_hour: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _aware(self) -> IgnoreCondition:
        if self.until is not None and self.until.tzinfo is None:
            raise ValueError("until must say its time zone")
        return self

    @property
    def forever(self) -> bool:
        """Whether nothing ends the ignore."""
        return self.until is None and self.events is None and self.per_hour is None

    def describe(self) -> str:
        """In words: "forever", "until 2026-12-05 10:00 UTC", "until 100 more events",
        joined with "or"."""
        if self.forever:
            return "forever"
        parts = []
        if self.until is not None:
            parts.append(f"until {self.until:%Y-%m-%d %H:%M %Z}".rstrip())
        if self.events is not None:
            parts.append(f"until {self.events} more events")
        if self.per_hour is not None:
            parts.append(f"until {self.per_hour} events in an hour")
        return " or ".join(parts)


#: How a resolved issue was resolved, as the words after "resolved".
_RESOLVED_HOW = {"now": "", "next_release": " in the next release", "fix": " by a fix"}


def status_label(issue: Mapping[str, Any]) -> str:
    """An issue's status with its substatus, as lists show it: ``unresolved``,
    ``unresolved (regressed)``, ``resolved``..."""
    sub = issue.get("substatus")
    return f"{issue['status']} ({sub})" if sub else str(issue["status"])


def describe_state(issue: Mapping[str, Any]) -> str:
    """Where an issue (a row of its workflow's fields) stands, in words: ``resolved in the
    next release (after 1.4.0) by ada``, ``ignored until 100 more events``, ``merged into
    issue #12``, ``unresolved (regressed)``. Text from the row is as stored: escape it for
    where it is shown."""
    state = status_label(issue)
    if issue["status"] == "resolved":
        state += _RESOLVED_HOW.get(issue.get("resolution") or "", "")
        if issue.get("resolved_in_release"):
            state += f" (after {issue['resolved_in_release']})"
        if issue.get("resolved_by"):
            state += f" by {issue['resolved_by']}"
    elif issue["status"] == "ignored":
        # The row holds the count that ends it (times_seen then): what is left of it is said.
        until_seen, seen = issue.get("ignore_until_seen"), issue.get("times_seen")
        events = until_seen if until_seen is None or seen is None else until_seen - seen
        condition = IgnoreCondition(
            until=issue.get("ignore_until"),
            events=None if events is None else max(events, 1),
            per_hour=issue.get("ignore_per_hour"),
        )
        state += f" {condition.describe()}"
    elif issue["status"] == "merged" and issue.get("merged_into"):
        state += f" into issue #{issue['merged_into']}"
    return state
