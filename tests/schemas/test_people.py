"""The audit contract: an audit row's hash stays what it was when the row was written."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from mendline.schemas.people import GENESIS_HASH, SYSTEM_ACTOR, Actor, AuditEntry, audit_hash

ALICE = Actor(name="alice", role="responder", auth="token", user_id=3, token_id="mlt_ab12cd34")
AT = datetime(2026, 12, 5, 10, 0, 0, 123456, tzinfo=UTC)


class LaterActor(Actor):
    """Actor as a later mendline might have it, with a field more."""

    team: str = "payments"


def resolved(actor: Actor) -> AuditEntry:
    return AuditEntry(
        actor=actor,
        action="issue.resolve",
        target="issue:12",
        before={"status": "open"},
        after={"status": "resolved", "note": "fixé"},
        origin="cli@host",
    )


def test_the_hash_of_a_row_is_the_one_stored_rows_have() -> None:
    # Rows in databases carry these hashes: a change here breaks every chain out there.
    assert audit_hash(resolved(ALICE), AT, GENESIS_HASH) == (
        "444b005f872405689f879ac9e9e9d605f37d2f7adb00d277956c914329740337"
    )
    applied = AuditEntry(actor=SYSTEM_ACTOR, action="fix.apply", target="fix:3")
    assert audit_hash(applied, datetime(2026, 12, 5, 10, 0, 1, tzinfo=UTC), "a" * 64) == (
        "f96c4ff0e771058b3cdaf8d6ebde33e2892ff63cf6dbf3ca063c62d1fc4f7f69"
    )


def test_a_field_added_to_the_actor_later_leaves_the_hash_alone() -> None:
    later = LaterActor(**ALICE.model_dump())
    assert resolved(later).actor.model_dump() != ALICE.model_dump()  # the field is there
    assert audit_hash(resolved(later), AT, GENESIS_HASH) == audit_hash(
        resolved(ALICE), AT, GENESIS_HASH
    )


def test_before_and_after_are_made_json_that_jsonb_takes() -> None:
    when = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    odd = {
        "nan": float("nan"),
        "up": float("inf"),
        "down": -float("inf"),
        "nul\x00key": "a\x00b",
        "at": when,
        "day": when.date(),
        "nested": [{"x": (1, float("nan"))}, "ok\ud800"],
        3: Decimal("1.50"),
        "fine": {"n": 0.1, "t": True, "none": None, "s": "é"},
    }
    entry = AuditEntry(actor=ALICE, action="issue.resolve", target="issue:1", before=odd)
    assert entry.before == {
        "nan": "NaN",
        "up": "Infinity",
        "down": "-Infinity",
        "nulkey": "ab",
        "at": "2026-12-05T10:00:00+00:00",
        "day": "2026-12-05",
        "nested": [{"x": [1, "NaN"]}, "ok?"],
        "3": "1.50",
        "fine": {"n": 0.1, "t": True, "none": None, "s": "é"},
    }
    assert entry.after is None
    json.dumps(entry.before, allow_nan=False).encode()  # strict JSON, and UTF-8
    again = AuditEntry(actor=ALICE, action="issue.resolve", target="issue:1", before=entry.before)
    assert again == entry  # JSON already is left as it is
