"""Learned review rules on a real PostgreSQL: a verdict of right teaches the shape of the
issue's culprit line (one rule a shape), a verdict of wrong disables what its finding taught,
disable and enable are audited and authorized, and ``learn_all`` back-fills."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from mendline.schemas.errors import NotFound, PermissionDenied
from mendline.schemas.people import Actor
from mendline.sinks.postgres import AuditStore, IssueActions, ReviewRuleStore, append_audit
from tests.db_helpers import RESPONDER, issue_actions, query, store_events
from tests.integration.event_factory import make_event

pytestmark = pytest.mark.integration

VIEWER = Actor(name="vic", role="viewer", auth="local")
CULPRIT = 'qty = int(request.args["qty"])'
SHAPE = "int(request.args['qty'])"


def event_at(issue: int, line: str, *, wrapped: bool = False) -> dict[str, Any]:
    """An event of its own issue whose root cause failed at ``line`` (in app, under a library
    frame); ``wrapped``: re-raised from another exception (the raised one last)."""
    event = make_event(issue)
    frames = [
        {"filename": "/app/orders.py", "module": "orders", "function": f"view_{issue}",
         "lineno": 10, "context_line": "    return handle(request)", "in_app": True},
        {"filename": "/app/orders.py", "module": "orders", "function": f"handle_{issue}",
         "lineno": 20, "context_line": f"    {line}", "in_app": True},
        {"filename": "/usr/lib/python3/x.py", "module": "x", "function": "lib",
         "lineno": 5, "context_line": "    return parse(s)", "in_app": False},
    ]  # fmt: skip
    event["exceptions"][0]["frames"] = frames
    if wrapped:
        raised = {
            "type": "OrderError",
            "value": "bad order",
            "frames": [{**frames[0], "context_line": "    raise OrderError() from exc"}],
        }
        event["exceptions"].append(raised)
    return event


@pytest.fixture
async def world(fresh_db_url: str) -> str:
    """Issues 1 to 3: 1 and 2 fail at lines of one shape (1's wrapped in another exception),
    3 at a line too common to teach; finding N on issue N, unjudged."""
    await store_events(
        fresh_db_url,
        [event_at(1, CULPRIT, wrapped=True)],
        [event_at(2, 'n = int(request.args["qty"])')],
        [event_at(3, "return total")],
    )
    await query(
        fresh_db_url,
        """INSERT INTO mendline.findings (issue_id, cache_key, analyser, root_cause, confidence,
               category, severity, suggested_fix)
           SELECT n, 'k' || n, 'heuristic', 'c', 0.5, 'bad_input', 'medium', 'default it to 0'
           FROM generate_series(1, 3) n""",
    )
    return fresh_db_url


@pytest.fixture
async def actions(world: str) -> AsyncIterator[IssueActions]:
    async with issue_actions(world) as actions:
        yield actions


@pytest.fixture
def store(actions: IssueActions) -> ReviewRuleStore:
    return ReviewRuleStore(actions.pool, append_audit, origin="test")


async def test_a_verdict_teaches_one_rule_a_shape_and_wrong_disables_its_own(
    actions: IssueActions, store: ReviewRuleStore
) -> None:
    assert await actions.mark_finding(RESPONDER, 1, "right") is True
    (rule,) = await store.rules()
    assert (rule.id, rule.shape, rule.example, rule.issue_id, rule.finding_id) == (
        "MRL1",
        SHAPE,
        CULPRIT,
        1,
        1,
    )
    assert rule.title.startswith("OrderError") and rule.fix == "default it to 0"
    await actions.mark_finding(RESPONDER, 2, "right")  # the same shape: no second rule
    await actions.mark_finding(RESPONDER, 3, "right")  # a line too common: no rule
    await actions.mark_finding(RESPONDER, 2, "wrong")  # did not teach it: it stays
    assert [(r.id, r.finding_id, r.disabled_at) for r in await store.rules()] == [("MRL1", 1, None)]
    await actions.resolve(RESPONDER, 1, "guarded the parse")
    assert [r.fix for r in await store.rules()] == ["guarded the parse"]
    await actions.mark_finding(RESPONDER, 1, "wrong")  # what it taught has lost its ground
    assert await store.rules() == []
    await actions.mark_finding(RESPONDER, 1, "right")  # a disabled rule stays disabled
    (kept,) = await store.rules(include_disabled=True)
    assert (kept.id, kept.disabled_by) == ("MRL1", RESPONDER.name) and kept.disabled_at
    marks = [
        (r.target, r.after)
        for r in reversed(await AuditStore(actions.pool).list(action="finding.mark"))
    ]
    assert marks == [
        ("finding:1", {"verdict": "right", "review_rule": "MRL1"}),
        ("finding:2", {"verdict": "right", "review_rule": "MRL1"}),
        ("finding:3", {"verdict": "right"}),
        ("finding:2", {"verdict": "wrong"}),
        ("finding:1", {"verdict": "wrong", "review_rules_disabled": ["MRL1"]}),
        ("finding:1", {"verdict": "right", "review_rule": "MRL1"}),
    ]


async def test_disable_and_enable_are_audited_and_need_a_responder(
    actions: IssueActions, store: ReviewRuleStore
) -> None:
    await actions.mark_finding(RESPONDER, 1, "right")
    with pytest.raises(PermissionDenied):
        await store.disable(VIEWER, 1)
    assert await store.disable(RESPONDER, 1) is True
    assert await store.disable(RESPONDER, 1) is False
    assert await store.rules() == []
    with pytest.raises(NotFound, match="no learned rule MRL9"):
        await store.enable(RESPONDER, 9)
    assert await store.enable(RESPONDER, 1) is True
    assert [r.id for r in await store.rules()] == ["MRL1"]
    rows = await AuditStore(actions.pool).list(action="review_rule.")
    assert [(r.action, r.target, r.actor.name, r.before, r.after) for r in reversed(rows)] == [
        ("review_rule.disable", "review_rule:1", "rita", {"active": True},
         {"active": False, "shape": SHAPE}),
        ("review_rule.enable", "review_rule:1", "rita", {"active": False, "disabled_by": "rita"},
         {"active": True, "shape": SHAPE}),
    ]  # fmt: skip


async def test_learn_all_back_fills_from_the_findings_marked_right_before(
    world: str, store: ReviewRuleStore
) -> None:
    await query(world, "UPDATE mendline.findings SET verdict = 'right'")  # as before rules
    with pytest.raises(PermissionDenied):
        await store.learn_all(VIEWER)
    assert await store.rules() == []
    learned = await store.learn_all(RESPONDER)
    assert [(r.id, r.shape, r.finding_id) for r in learned] == [("MRL1", SHAPE, 1)]
    assert await store.learn_all(RESPONDER) == []  # nothing new: no second audit row
    (row,) = await AuditStore(store.pool).list(action="review_rule.learn")
    assert (row.target, row.after) == ("review_rules", {"findings": 3, "learned": ["MRL1"]})
