"""The audit trail's pure parts: what a change changed (``changed_fields``, an audit row's
before and after), and whether the hash chain is intact, and if not, where it first breaks,
over rows given in id order (the store streams them from the database).

A row is *altered* when its ``row_hash`` is not the hash of its content and ``prev_hash``
(anything in it changed, its hash not recomputed); the row before it was *removed* (or
altered, its hash recomputed) when its ``prev_hash`` is not the ``row_hash`` of the row
before it (of the first row: ``GENESIS_HASH``). Gaps in the ids prove nothing: a sequence
skips a number whenever a transaction rolls back.

The hash has no key: whoever can write the table behind the trigger can rewrite a row and
every row after it with hashes that verify, and rows removed from the end leave no break.
Against those, a ``row_hash`` kept outside the database (``expect``) must still be in the
intact chain.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Literal

from mendline.schemas.people import GENESIS_HASH, StoredAuditEntry, audit_hash

__all__ = [
    "BreakReason",
    "ChainBreak",
    "ChainCheck",
    "ChainWalk",
    "changed_fields",
    "verify_chain",
]

#: Why the chain breaks at a row: its own content changed, or the link to the row before.
BreakReason = Literal["altered", "removed"]


def changed_fields(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The fields whose values differ between ``before`` and ``after`` (a field one side
    lacks is None there), as an audit row's before and after; None when nothing changed."""
    names = [name for name in {**before, **after} if before.get(name) != after.get(name)]
    if not names:
        return None
    return {n: before.get(n) for n in names}, {n: after.get(n) for n in names}


@dataclass(frozen=True)
class ChainBreak:
    """The first row at which the chain breaks, and why."""

    row: StoredAuditEntry
    reason: BreakReason

    def describe(self) -> str:
        """For people: ``row 1234 (2026-12-05T10:00:00Z issue.resolve issue:12 by alice):
        its content was altered``, or ``the row before 1234 was removed or altered``."""
        if self.reason == "removed":
            return f"the row before {self.row.id} was removed or altered"
        row = self.row
        at = row.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        who = f"{at} {row.action} {row.target} by {row.actor.name}"
        return f"row {row.id} ({who}): its content was altered"


@dataclass(frozen=True)
class ChainCheck:
    """What a walk of the chain found: the rows it checked (up to and including a break),
    the ``row_hash`` and id of the last intact one (``GENESIS_HASH`` and 0 for none), and the
    first break; with a hash to expect, the id of the intact row that has it (None: not
    found; 0: the expected hash is ``GENESIS_HASH``, the chain's start)."""

    rows: int
    last_hash: str
    broken: ChainBreak | None = None
    expected: str | None = None
    expected_id: int | None = None
    last_id: int = 0

    @property
    def intact(self) -> bool:
        """Whether no break was found."""
        return self.broken is None

    @property
    def holds(self) -> bool:
        """Whether the chain is intact and holds the expected hash (when one was given)."""
        return self.intact and (self.expected is None or self.expected_id is not None)

    def describe(self) -> str:
        """For people: what the walk found, in one line."""
        if self.broken is not None:
            return f"the audit chain is broken: {self.broken.describe()}"
        if self.expected is not None and self.expected_id is None:
            return (
                f"the audit chain does not hold the expected hash {self.expected}: rows were"
                " removed from its end, or it was rewritten from a row before that one"
            )
        found = (
            "" if self.expected_id is None else f"; row {self.expected_id} has the expected hash"
        )
        return f"the audit chain is intact: {self.rows} row(s), last hash {self.last_hash}{found}"

    def as_json(self) -> dict[str, Any]:
        """What the walk found as JSON values (``mendline audit verify --json``, the API)."""
        broken = self.broken
        return {
            "intact": self.intact,
            "holds": self.holds,
            "rows": self.rows,
            "last_id": self.last_id,
            "last_hash": self.last_hash,
            "expected": self.expected,
            "expected_id": self.expected_id,
            "broken_id": None if broken is None else broken.row.id,
            "reason": None if broken is None else broken.reason,
            "message": self.describe(),
        }


class ChainWalk:
    """The chain walked one row at a time (``add``), so that a caller can stream the rows;
    with ``expect``, looking for the intact row with that ``row_hash``. With ``after`` (an
    earlier walk that found the chain intact), it goes on from that walk's last row: only the
    rows after it are walked (a row before it altered since is not seen)."""

    def __init__(self, expect: str | None = None, after: ChainCheck | None = None) -> None:
        if after is not None and not after.intact:
            raise ValueError("a walk goes on only from an intact chain")
        self.rows = after.rows if after else 0
        self.last_id = after.last_id if after else 0
        self.last_hash = after.last_hash if after else GENESIS_HASH
        self.broken: ChainBreak | None = None
        self.expected = expect
        self.expected_id = 0 if expect == GENESIS_HASH else None

    def add(self, row: StoredAuditEntry) -> bool:
        """Check the next row (in id order); False once the chain is broken (stop there)."""
        if self.broken is not None:
            return False
        self.rows += 1
        if audit_hash(row, row.at, row.prev_hash) != row.row_hash:
            self.broken = ChainBreak(row, "altered")
        elif row.prev_hash != self.last_hash:
            self.broken = ChainBreak(row, "removed")
        else:
            self.last_id, self.last_hash = row.id, row.row_hash
            if row.row_hash == self.expected:
                self.expected_id = row.id
        return self.broken is None

    def result(self) -> ChainCheck:
        """What the walk found so far."""
        return ChainCheck(
            rows=self.rows,
            last_hash=self.last_hash,
            broken=self.broken,
            expected=self.expected,
            expected_id=self.expected_id,
            last_id=self.last_id,
        )


def verify_chain(rows: Iterable[StoredAuditEntry], expect: str | None = None) -> ChainCheck:
    """Walk ``rows`` (in id order) and return the first break, or the count when intact;
    with ``expect``, whether an intact row has that ``row_hash``."""
    walk = ChainWalk(expect)
    for row in rows:
        if not walk.add(row):
            break
    return walk.result()
