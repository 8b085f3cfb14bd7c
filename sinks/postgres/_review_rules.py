"""Learned review rules in PostgreSQL: learned from findings marked right (in the transaction
of the verdict), listed, and disabled or enabled by people, each change audited."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import asyncpg

from mendline.analyzers.policy.people import authorize
from mendline.analyzers.review import culprit_line, shape_of
from mendline.schemas.errors import FindingNotFound, NotFound
from mendline.schemas.people import Actor
from mendline.schemas.review import LEARNED_PREFIX, LearnedRule, learned_rule_id
from mendline.sinks.postgres._audit import AuditedStore
from mendline.sinks.postgres._errors import translating

if TYPE_CHECKING:
    _Conn = asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]

__all__ = ["ReviewRuleStore"]

_HINT = "`mendline review rules list --all` shows the learned rules and their ids"
_LONGEST_EXAMPLE = 2000

# A LearnedRule's fields but its link (the dashboard's, which the store does not know).
_COLUMNS = """id AS number, shape, example, title, issue_id, finding_id, created_at, disabled_at,
       disabled_by, fix"""

# The finding's issue and the payload of its newest stored event.
_CULPRIT = """
SELECT f.issue_id, i.title,
       (SELECT e.payload FROM mendline.events e WHERE e.issue_id = f.issue_id
        ORDER BY e.received_at DESC LIMIT 1) AS payload
FROM mendline.findings f JOIN mendline.issues i ON i.id = f.issue_id
WHERE f.id = $1
"""


@translating
class ReviewRuleStore(AuditedStore):
    """The rules a review learns from findings marked right: one per shape of a culprit line
    (``analyzers.review``'s ``shape_of``), kept when disabled.

    ``learn_within`` runs in the transaction of a verdict (``IssueActions.mark_finding``: the
    CLI's and the dashboard's alike); ``unlearn_within`` in that of a verdict of wrong.
    ``learn_all`` (review_rule.learn), ``disable`` (review_rule.disable) and ``enable``
    (review_rule.enable) authorize their actor, change and write their audit row in one
    transaction. ``rules`` reads the public view ``mendline.learned_review_rules``."""

    async def learn_within(self, conn: _Conn, finding_id: int) -> LearnedRule | None:
        """The rule the finding teaches, in the caller's transaction: the shape of its issue's
        culprit line (the innermost in-app frame of the root cause of its newest event) as a
        rule, made unless one has that shape already (which is returned as it is: a disabled
        rule stays disabled). None when the line has no shape (generic, not Python, no
        stored event). FindingNotFound when there is no such finding."""
        row = await conn.fetchrow(_CULPRIT, finding_id)
        if row is None:
            raise FindingNotFound(f"there is no finding {finding_id}")
        payload = row["payload"]
        event = json.loads(payload) if isinstance(payload, str | bytes) else payload
        line = culprit_line(event) if isinstance(event, dict) else None
        shape = shape_of(line) if line is not None else None
        if line is None or shape is None:
            return None
        await conn.execute(
            """INSERT INTO mendline.review_rules (shape, example, title, issue_id, finding_id)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT (shape) DO NOTHING""",
            shape,
            line[:_LONGEST_EXAMPLE],
            row["title"],
            row["issue_id"],
            finding_id,
        )
        learned = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM mendline.learned_review_rules WHERE shape = $1", shape
        )
        return _rule(learned)

    async def unlearn_within(self, conn: _Conn, actor: Actor, finding_id: int) -> list[str]:
        """Disable, in the caller's transaction, the active rules the finding taught (it was
        marked wrong: what it taught has lost its ground); their ids. A rule of the same shape
        taught by another finding is not this finding's, and stays."""
        rows = await conn.fetch(
            """UPDATE mendline.review_rules SET disabled_at = now(), disabled_by = $2
               WHERE finding_id = $1 AND disabled_at IS NULL RETURNING id""",
            finding_id,
            actor.name,
        )
        return [learned_rule_id(r["id"]) for r in sorted(rows, key=lambda r: int(r["id"]))]

    async def learn_all(self, actor: Actor) -> list[LearnedRule]:
        """Learn from every finding marked right, oldest first (what was marked before rules
        were learned); the rules made. One audit row (on ``review_rules``) names them and
        counts the findings read; none when nothing was learned."""
        authorize(actor, "review_rule.learn")
        async with self._changing() as conn:
            known = {r["id"] for r in await conn.fetch("SELECT id FROM mendline.review_rules")}
            right = [
                r["id"]
                for r in await conn.fetch(
                    "SELECT id FROM mendline.findings WHERE verdict = 'right' ORDER BY id"
                )
            ]
            made: dict[int, LearnedRule] = {}
            for finding_id in right:
                rule = await self.learn_within(conn, finding_id)
                if rule is not None and rule.number not in known:
                    made[rule.number] = rule
            if made:
                after = {"findings": len(right), "learned": [r.id for r in made.values()]}
                await self._record(conn, actor, "review_rule.learn", "review_rules", None, after)
        return list(made.values())

    async def rules(self, include_disabled: bool = False) -> list[LearnedRule]:
        """The learned rules that apply, oldest first; with ``include_disabled``, every one."""
        rows = await self.pool.fetch(
            f"""SELECT {_COLUMNS} FROM mendline.learned_review_rules WHERE $1 OR active
                ORDER BY number""",
            include_disabled,
        )
        return [_rule(row) for row in rows]

    async def disable(self, actor: Actor, number: int) -> bool:
        """Stop applying rule ``number`` (kept, and kept disabled when its shape is learned
        again); whether it changed (False: it was disabled). NotFound when there is none."""
        authorize(actor, "review_rule.disable")
        return await self._switch(actor, number, active=False)

    async def enable(self, actor: Actor, number: int) -> bool:
        """Apply a disabled rule again; whether it changed (False: it applied already).
        NotFound when there is no such rule."""
        authorize(actor, "review_rule.enable")
        return await self._switch(actor, number, active=True)

    async def _switch(self, actor: Actor, number: int, *, active: bool) -> bool:
        action = "review_rule.enable" if active else "review_rule.disable"
        async with self._changing() as conn:
            row = await conn.fetchrow(
                """SELECT shape, disabled_at, disabled_by FROM mendline.review_rules
                   WHERE id = $1 FOR UPDATE""",
                number,
            )
            if row is None:
                raise NotFound(f"there is no learned rule {LEARNED_PREFIX}{number}", hint=_HINT)
            if (row["disabled_at"] is None) == active:
                return False
            await conn.execute(
                """UPDATE mendline.review_rules
                   SET disabled_at = CASE WHEN $2 THEN NULL ELSE now() END,
                       disabled_by = CASE WHEN $2 THEN NULL ELSE $3 END
                   WHERE id = $1""",
                number,
                active,
                actor.name,
            )
            before: dict[str, Any] = {"active": not active}
            if row["disabled_by"] is not None:
                before["disabled_by"] = row["disabled_by"]
            after = {"active": active, "shape": row["shape"]}
            target = f"review_rule:{number}"
            await self._record(conn, actor, action, target, before, after)
        return True


def _rule(row: Any) -> LearnedRule:
    return LearnedRule(**dict(row))
