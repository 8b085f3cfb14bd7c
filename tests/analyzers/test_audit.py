"""The audit chain's verifier, over rows built here: intact chains, and the first break of
each kind named with its reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mendline.analyzers.audit import ChainBreak, changed_fields, verify_chain
from mendline.schemas.people import (
    GENESIS_HASH,
    SYSTEM_ACTOR,
    Actor,
    AuditEntry,
    StoredAuditEntry,
    audit_hash,
)

ALICE = Actor(name="alice", role="responder", auth="token", user_id=3, token_id="mlt_ab12cd34")
START = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


def chain(count: int) -> list[StoredAuditEntry]:
    """``count`` rows, each chained to the one before, as append_audit stores them."""
    rows, prev = [], GENESIS_HASH
    for n in range(1, count + 1):
        entry = AuditEntry(
            actor=ALICE if n % 2 else SYSTEM_ACTOR,
            action="issue.resolve",
            target=f"issue:{n}",
            before={"status": "open"},
            after={"status": "resolved", "n": n},
            origin="cli@host",
        )
        at = START + timedelta(seconds=n, microseconds=n)
        row_hash = audit_hash(entry, at, prev)
        rows.append(
            StoredAuditEntry(
                **entry.model_dump(), id=n * 10, at=at, prev_hash=prev, row_hash=row_hash
            )
        )
        prev = row_hash
    return rows


def altered(rows: list[StoredAuditEntry], i: int, **changes: object) -> list[StoredAuditEntry]:
    return [*rows[:i], rows[i].model_copy(update=changes), *rows[i + 1 :]]


def rehashed(rows: list[StoredAuditEntry], i: int, **changes: object) -> list[StoredAuditEntry]:
    """Row ``i`` changed and its own hash recomputed, as a careful forger would."""
    row = rows[i].model_copy(update=changes)
    row = row.model_copy(update={"row_hash": audit_hash(row, row.at, row.prev_hash)})
    return [*rows[:i], row, *rows[i + 1 :]]


ROWS = chain(5)


@pytest.mark.parametrize(
    ("rows", "checked", "broken_id", "reason"),
    [
        ([], 0, None, None),
        (ROWS, 5, None, None),
        (ROWS[:1], 1, None, None),
        (altered(ROWS, 2, target="issue:99"), 3, 30, "altered"),
        (altered(ROWS, 0, after={"status": "open"}), 1, 10, "altered"),
        (altered(ROWS, 3, actor=ALICE.model_copy(update={"role": "admin"})), 4, 40, "altered"),
        (altered(ROWS, 4, at=ROWS[4].at + timedelta(microseconds=1)), 5, 50, "altered"),
        (altered(ROWS, 1, prev_hash=GENESIS_HASH), 2, 20, "altered"),
        (altered(ROWS, 1, row_hash="f" * 64), 2, 20, "altered"),
        ([*ROWS[:2], *ROWS[3:]], 3, 40, "removed"),  # a row removed from the middle
        (ROWS[1:], 1, 20, "removed"),  # the first row removed
        (rehashed(ROWS, 2, target="issue:99"), 4, 40, "removed"),  # altered, hash recomputed
        (ROWS[:3] + ROWS[:3], 4, 10, "removed"),  # rows replayed
        (ROWS[:4], 4, None, None),  # the last row removed: nothing to tell (see the README)
    ],
)
def test_the_walk_stops_at_the_first_break_with_its_reason(
    rows: list[StoredAuditEntry], checked: int, broken_id: int | None, reason: str | None
) -> None:
    check = verify_chain(rows)
    assert check.rows == checked
    assert check.intact == (broken_id is None)
    if check.broken is None:
        assert check.last_hash == (rows[-1].row_hash if rows else GENESIS_HASH)
    else:
        assert (check.broken.row.id, check.broken.reason) == (broken_id, reason)
        assert check.last_hash == (rows[checked - 2].row_hash if checked > 1 else GENESIS_HASH)


def test_a_break_says_which_row_for_people() -> None:
    row = ROWS[0]
    assert ChainBreak(row, "altered").describe() == (
        "row 10 (2026-12-05T10:00:01Z issue.resolve issue:1 by alice): its content was altered"
    )
    assert ChainBreak(row, "removed").describe() == "the row before 10 was removed or altered"


@pytest.mark.parametrize(
    ("before", "after", "changed"),
    [
        (
            {"status": "unresolved"},
            {"status": "ignored"},
            ({"status": "unresolved"}, {"status": "ignored"}),
        ),
        ({"status": "ignored"}, {"status": "ignored"}, None),
        ({}, {}, None),
        (
            {"status": "resolved", "resolution_note": None},
            {"status": "resolved", "resolution_note": "guarded the parser"},
            ({"resolution_note": None}, {"resolution_note": "guarded the parser"}),
        ),
        (
            {"verdict": None, "verdict_note": None},
            {"verdict": "wrong", "verdict_note": None},
            ({"verdict": None}, {"verdict": "wrong"}),
        ),
        ({"merged_into": None}, {"merged_into": 0}, ({"merged_into": None}, {"merged_into": 0})),
        ({"note": None}, {}, None),  # a field one side lacks is None there
        ({}, {"merged_into": 3}, ({"merged_into": None}, {"merged_into": 3})),
    ],
)
def test_changed_fields_keeps_only_what_differs(
    before: dict[str, object],
    after: dict[str, object],
    changed: tuple[dict[str, object], dict[str, object]] | None,
) -> None:
    assert changed_fields(before, after) == changed


def rewritten(rows: list[StoredAuditEntry], i: int, **changes: object) -> list[StoredAuditEntry]:
    """Row ``i`` changed and it and every row after it rehashed: the hash has no key, so
    whoever can write the table can do this, and the chain verifies."""
    out, prev = rows[:i], rows[i - 1].row_hash if i else GENESIS_HASH
    for n, row in enumerate(rows[i:]):
        row = row.model_copy(update={**(changes if n == 0 else {}), "prev_hash": prev})
        row = row.model_copy(update={"row_hash": audit_hash(row, row.at, prev)})
        out.append(row)
        prev = row.row_hash
    return out


@pytest.mark.parametrize(
    ("rows", "expect", "expected_id", "holds"),
    [
        (ROWS, ROWS[4].row_hash, 50, True),
        (ROWS, ROWS[1].row_hash, 20, True),  # an older hash kept: rows after it are added
        (ROWS, GENESIS_HASH, 0, True),
        ([], GENESIS_HASH, 0, True),
        (ROWS[:4], ROWS[4].row_hash, None, False),  # the last row removed
        (rewritten(ROWS, 2, target="issue:99"), ROWS[3].row_hash, None, False),
        (rewritten(ROWS, 2, target="issue:99"), ROWS[1].row_hash, 20, True),  # before it
        (altered(ROWS, 3, target="issue:99"), ROWS[4].row_hash, None, False),  # after a break
        (altered(ROWS, 3, target="issue:99"), ROWS[1].row_hash, 20, False),  # broken anyway
        ([], "a" * 64, None, False),
    ],
)
def test_a_hash_kept_elsewhere_must_be_in_the_intact_chain(
    rows: list[StoredAuditEntry], expect: str, expected_id: int | None, holds: bool
) -> None:
    assert verify_chain(rewritten(ROWS, 2, target="issue:99")).intact  # undetectable alone
    check = verify_chain(rows, expect)
    assert (check.expected, check.expected_id, check.holds) == (expect, expected_id, holds)
    assert verify_chain(rows).holds == verify_chain(rows).intact


def test_what_the_walk_found_for_people() -> None:
    assert verify_chain(ROWS).describe() == (
        f"the audit chain is intact: 5 row(s), last hash {ROWS[4].row_hash}"
    )
    assert verify_chain(ROWS, ROWS[1].row_hash).describe() == (
        f"the audit chain is intact: 5 row(s), last hash {ROWS[4].row_hash};"
        " row 20 has the expected hash"
    )
    assert verify_chain(ROWS[:4], ROWS[4].row_hash).describe() == (
        f"the audit chain does not hold the expected hash {ROWS[4].row_hash}: rows were"
        " removed from its end, or it was rewritten from a row before that one"
    )
    assert verify_chain(ROWS[1:]).describe() == (
        "the audit chain is broken: the row before 20 was removed or altered"
    )
