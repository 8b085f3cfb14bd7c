"""The audited actions on issues, findings and events against a real PostgreSQL: each one
changes its target and writes exactly one audit row, chained, in the same transaction; a role
too low is refused with nothing changed and no row; a change that changes nothing writes none."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from mendline.schemas.errors import FindingNotFound, IssueNotFound, PermissionDenied
from mendline.schemas.people import SYSTEM_ACTOR, Actor, AuditEntry
from mendline.schemas.settings import load_settings
from mendline.sinks.postgres import (
    AuditStore,
    IssueActions,
    append_audit,
    connect_store,
)
from tests.db_helpers import issue_actions, query
from tests.integration.stage_helpers import ingest, issue_events

pytestmark = pytest.mark.integration

RITA = Actor(name="rita", role="responder", auth="token", user_id=7, token_id="mlt_0a1b2c3d")
VIC = Actor(name="vic", role="viewer", auth="local")
ADMIN = Actor(name="ada", role="admin", auth="local")
NOW = datetime.now(UTC)

Act = Callable[[IssueActions, Actor], Awaitable[object]]


@dataclass(frozen=True)
class Case:
    """An action, how it is taken, the audit row it writes (as ``actor``), and a query of
    the state it changes with that state before and after."""

    action: str
    act: Act
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any]
    state: str
    was: tuple[Any, ...]
    becomes: tuple[Any, ...]
    actor: Actor = RITA


def _old_partitions() -> list[str]:
    return [f"events_{NOW - timedelta(days=days):%Y%m%d}" for days in (40, 39, 38)]


CASES = [
    Case(
        "issue.ignore",
        lambda actions, actor: actions.ignore(actor, 1),
        "issue:1",
        {"status": "unresolved"},
        {"status": "ignored", "until": "forever"},
        "SELECT status FROM mendline.issues WHERE id = 1",
        ("unresolved",),
        ("ignored",),
    ),
    Case(
        "issue.resolve",
        lambda actions, actor: actions.resolve(actor, 1, "guarded the parser"),
        "issue:1",
        {"status": "unresolved", "resolution": None, "resolution_note": None},
        {"status": "resolved", "resolution": "now", "resolution_note": "guarded the parser"},
        """SELECT status, resolution_note,
                  (SELECT count(*) FROM mendline.triggers WHERE kind = 'resolved')
           FROM mendline.issues WHERE id = 1""",
        ("unresolved", None, 0),
        ("resolved", "guarded the parser", 1),
    ),
    Case(
        "issue.merge",
        lambda actions, actor: actions.merge(actor, 1, 2),
        "issue:2",
        {"status": "unresolved", "merged_into": None},
        {"status": "merged", "merged_into": 1, "fingerprints": 1},
        """SELECT s.status, s.merged_into, t.times_seen FROM mendline.issues s, mendline.issues t
           WHERE s.id = 2 AND t.id = 1""",
        ("unresolved", None, 3),
        ("merged", 1, 6),
    ),
    Case(
        "finding.mark",
        lambda actions, actor: actions.mark_finding(actor, 2, "wrong", "it was the proxy"),
        "finding:2",
        {"verdict": None, "verdict_note": None},
        {"verdict": "wrong", "verdict_note": "it was the proxy", "also_marked": "finding:1"},
        "SELECT array_agg(verdict ORDER BY id), max(verdict_note) FROM mendline.findings",
        ([None, None], None),
        (["wrong", "wrong"], "it was the proxy"),
    ),
    Case(
        "issue.reanalyse",
        lambda actions, actor: actions.reanalyse(actor, 1),
        "issue:1",
        {"finding_id": 2},
        {"analysis": "asked", "fresh": True},
        "SELECT count(*) FROM mendline.audit_log WHERE action = 'issue.reanalyse'",
        (0,),
        (1,),
    ),
    Case(
        "events.prune",
        lambda actions, actor: actions.prune_events(actor, 30, now=NOW),
        "events",
        None,
        {
            "retention_days": 30,
            "older_than": (NOW - timedelta(days=30)).date().isoformat(),
            "dropped_partitions": _old_partitions(),
            "rows_deleted": {
                "events_default": 0,
                "event_ids": 0,
                "issue_counts": 0,
                "fingerprint_counts": 0,
                "event_samples": 0,
                "lost_events": 0,
            },
        },
        """SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'mendline.events'::regclass AND c.relname = ANY($1::text[])""",
        (3,),
        (0,),
        actor=SYSTEM_ACTOR,
    ),
]


@pytest.fixture
async def world(fresh_db_url: str) -> str:
    """Issues 1 to 3 (3 events each), finding 1 on issue 1 and finding 2 served from it, and
    three days of event partitions 40 days old."""
    settings = load_settings(database_url=fresh_db_url, frequency_threshold=0)
    for issue in range(3):  # one at a time: issue ids 1, 2, 3
        await ingest(settings, issue_events(range(issue, issue + 1)))
    store = await connect_store(settings)
    try:
        await store.ensure_partitions((NOW - timedelta(days=40)).date())
    finally:
        await store.close()
    await query(
        fresh_db_url,
        """INSERT INTO mendline.findings (issue_id, cache_key, analyser, root_cause, confidence,
               category, severity, suggested_fix, cached_from)
           VALUES (1, 'k@1', 'heuristic', 'c', 0.5, 'bad_input', 'medium', 'f', NULL),
                  (1, 'k@1', 'heuristic', 'c', 0.5, 'bad_input', 'medium', 'f', 1)""",
    )
    return fresh_db_url


@pytest.fixture
async def actions(world: str) -> AsyncIterator[IssueActions]:
    async with issue_actions(world) as actions:
        yield actions


@pytest.fixture
def trail(actions: IssueActions) -> AuditStore:
    return AuditStore(actions.pool)


async def state(url: str, case: Case) -> tuple[Any, ...]:
    args = [_old_partitions()] if "$1" in case.state else []
    (row,) = await query(url, case.state, *args)
    return tuple(row)


@pytest.mark.parametrize("case", CASES, ids=[c.action for c in CASES])
async def test_each_action_changes_its_target_and_writes_one_chained_audit_row(
    case: Case, world: str, actions: IssueActions, trail: AuditStore
) -> None:
    assert await state(world, case) == case.was
    await case.act(actions, case.actor)
    assert await state(world, case) == case.becomes
    (row,) = await trail.list()
    assert (row.actor, row.action, row.target, row.origin) == (
        case.actor,
        case.action,
        case.target,
        "test",
    )
    assert (row.before, row.after) == (case.before, case.after)
    checked = await trail.verify()
    assert checked.intact and checked.rows == 1


@pytest.mark.parametrize(
    ("case", "actor"),
    [(c, VIC) for c in CASES] + [(CASES[-1], RITA)],  # pruning is for admins
    ids=[f"{c.action}-viewer" for c in CASES] + ["events.prune-responder"],
)
async def test_a_role_too_low_is_refused_with_nothing_changed_and_no_row(
    case: Case, actor: Actor, world: str, actions: IssueActions, trail: AuditStore
) -> None:
    with pytest.raises(PermissionDenied) as refused:
        await case.act(actions, actor)
    assert refused.value.action == case.action
    assert str(refused.value).startswith(f"{actor.name} ({actor.role}) may not {case.action}")
    assert await state(world, case) == case.was
    assert await trail.list() == []


async def test_every_action_in_turn_is_one_chain_in_order(
    actions: IssueActions, trail: AuditStore
) -> None:
    for case in CASES:
        await case.act(actions, case.actor)
    rows = await trail.list()
    assert [(r.action, r.actor.name) for r in reversed(rows)] == [
        (c.action, c.actor.name) for c in CASES
    ]
    checked = await trail.verify()
    assert checked.intact and checked.rows == len(CASES)


async def test_what_changes_nothing_writes_no_row_and_a_new_note_only_itself(
    actions: IssueActions, trail: AuditStore, world: str
) -> None:
    assert await actions.ignore(RITA, 3) is True
    assert await actions.ignore(RITA, 3) is False
    assert await actions.resolve(RITA, 1, "guarded the parser") is True
    assert await actions.resolve(RITA, 1) is False  # no note keeps the note it has
    assert await actions.resolve(RITA, 1, "guarded the parser") is False
    assert await actions.resolve(RITA, 1, "and the proxy") is True
    assert await actions.mark_finding(RITA, 1, "right") is True
    assert await actions.mark_finding(RITA, 1, "right") is False
    assert await actions.prune_events(ADMIN, 30, now=NOW) == _old_partitions()
    assert await actions.prune_events(ADMIN, 30, now=NOW) == []
    rows = [(r.action, r.target, r.before, r.after) for r in reversed(await trail.list())]
    assert rows[:4] == [
        (
            "issue.ignore",
            "issue:3",
            {"status": "unresolved"},
            {"status": "ignored", "until": "forever"},
        ),
        (
            "issue.resolve",
            "issue:1",
            {"status": "unresolved", "resolution": None, "resolution_note": None},
            {"status": "resolved", "resolution": "now", "resolution_note": "guarded the parser"},
        ),
        (
            "issue.resolve",
            "issue:1",
            {"resolution_note": "guarded the parser"},
            {"resolution_note": "and the proxy"},
        ),
        ("finding.mark", "finding:1", {"verdict": None}, {"verdict": "right"}),
    ]
    assert [r[0] for r in rows[4:]] == ["events.prune"]
    resolved = await query(
        world, "SELECT count(*) AS n FROM mendline.triggers WHERE kind = $1", "resolved"
    )
    assert resolved[0]["n"] == 1  # a new note is not announced again


@pytest.mark.parametrize(
    ("act", "error", "message"),
    [
        (lambda a: a.ignore(RITA, 99), IssueNotFound, "there is no issue 99 (or it was merged)"),
        (lambda a: a.resolve(RITA, 99), IssueNotFound, "there is no issue 99 (or it was merged)"),
        (lambda a: a.merge(RITA, 1, 99), IssueNotFound, "there is no issue 99"),
        (lambda a: a.merge(RITA, 1, 1), IssueNotFound, "cannot merge issue 1 into itself"),
        (lambda a: a.mark_finding(RITA, 99, "right"), FindingNotFound, "there is no finding 99"),
        (lambda a: a.reanalyse(RITA, 99), IssueNotFound, "there is no issue 99 (or it was merged)"),
    ],
)
async def test_a_missing_target_writes_no_row(
    act: Callable[[IssueActions], Awaitable[object]],
    error: type[Exception],
    message: str,
    actions: IssueActions,
    trail: AuditStore,
) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        await act(actions)
    assert await trail.list() == []


async def _failing_writer(conn: asyncpg.Connection[Any], entry: AuditEntry) -> None:
    await append_audit(conn, entry)
    raise RuntimeError("the audit trail failed")


@pytest.mark.parametrize("case", CASES, ids=[c.action for c in CASES])
async def test_a_change_whose_audit_row_fails_is_rolled_back(
    case: Case, world: str, actions: IssueActions, trail: AuditStore
) -> None:
    failing = IssueActions(actions.pool, _failing_writer, origin="test")
    with pytest.raises(RuntimeError, match="the audit trail failed"):
        await case.act(failing, case.actor)
    assert await state(world, case) == case.was
    assert await trail.list() == []
