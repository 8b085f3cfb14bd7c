"""The fix store: fixes proposed from findings' patches, approved, claimed with a lease,
applied, deployed, verified or regressed, rolled back; every move checked and audited."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg
from pydantic import BaseModel

from mendline.analyzers.audit import changed_fields
from mendline.analyzers.policy.people import authorize
from mendline.schemas.errors import (
    FindingNotFound,
    FixNotFound,
    IllegalTransition,
    IssueNotFound,
    RejectedData,
)
from mendline.schemas.fix import (
    Delivery,
    FixState,
    PolicyDecision,
    Verification,
    check_transition,
    fix_branch,
    revert_branch,
)
from mendline.schemas.people import SYSTEM_ACTOR, Actor, AuthMethod
from mendline.schemas.settings import Settings
from mendline.sinks.postgres._admin import IssueActions
from mendline.sinks.postgres._audit import AUDIT_LOCK, AuditedStore, AuditWriter, append_audit
from mendline.sinks.postgres._errors import translating
from mendline.sinks.postgres._migrate import migrated_pool

if TYPE_CHECKING:
    _Conn = asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]

__all__ = ["FixStore", "Handover", "StoredFix", "connect_fixes"]

_FIXES_HINT = "`mendline fix list` shows the fixes and their states"

_COLUMNS = """id, finding_id, issue_id, state, patch, mapped_patch, repository,
    decision::text AS decision, approvals_needed, requested_by, requested_auth, created_at,
    updated_at, approved_at, rejected_at, rejected_by, rejected_reason, owner, lease_until,
    attempts, applying_since, verification::text AS verification, delivery::text AS delivery,
    error, applied_at, failed_at, release, deployed_at, verified_at, regressed_at,
    rolled_back_at, rollback_delivery::text AS rollback_delivery,
    ARRAY(SELECT a.approver FROM mendline.fix_approvals a WHERE a.fix_id = fix_jobs.id
          ORDER BY a.id) AS approvals"""

_FINAL = "('rejected', 'failed', 'rolled_back')"

_PROPOSE = f"""
INSERT INTO mendline.fix_jobs (finding_id, issue_id, patch, mapped_patch, repository, decision,
                               approvals_needed, requested_by, requested_auth)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9)
ON CONFLICT (finding_id) WHERE state NOT IN {_FINAL} DO NOTHING
RETURNING {_COLUMNS}
"""

# The open fix of a finding (or, had it just become final, its newest).
_OPEN_FIX = f"""
SELECT {_COLUMNS} FROM mendline.fix_jobs WHERE finding_id = $1
ORDER BY state NOT IN {_FINAL} DESC, id DESC LIMIT 1
"""

# The open fix of a finding, only.
_OPEN_ONLY = f"""
SELECT {_COLUMNS} FROM mendline.fix_jobs WHERE finding_id = $1 AND state NOT IN {_FINAL}
"""

# What each move sets besides the state ($2): its own parameters from $3 on.
_SETS: dict[FixState, str] = {
    "proposed": """owner = NULL, lease_until = NULL, approved_at = NULL, decision = $3::jsonb,
                   approvals_needed = $4""",
    "approved": "approved_at = now()",
    "rejected": "rejected_at = now(), rejected_by = $3, rejected_reason = $4",
    "applying": """owner = $3, lease_until = now() + make_interval(secs => $4),
                   attempts = attempts + 1, applying_since = now()""",
    "applied": """lease_until = NULL, delivery = $3::jsonb, verification = $4::jsonb,
                  applied_at = now()""",
    "failed": """lease_until = NULL, error = $3, failed_at = now(),
                 verification = coalesce($4::jsonb, verification)""",
    "deployed": "release = $3, deployed_at = now()",
    "verified": "verified_at = now()",
    "regressed": "regressed_at = now(), error = $3",
    "rolled_back": "rolled_back_at = now(), rollback_delivery = $3::jsonb",
}
_MOVES = {
    state: f"""UPDATE mendline.fix_jobs SET state = $2, updated_at = now(), {sets}
               WHERE id = $1 RETURNING {_COLUMNS}"""
    for state, sets in _SETS.items()
}
# The audit action of the move to each state.
_ACTIONS: dict[FixState, str] = {
    "proposed": "fix.give_back",
    "approved": "fix.approve",
    "rejected": "fix.reject",
    "applying": "fix.apply",
    "applied": "fix.applied",
    "failed": "fix.fail",
    "deployed": "fix.deployed",
    "verified": "fix.verify",
    "regressed": "fix.regress",
    "rolled_back": "fix.rollback",
}

_CLAIMABLE = f"""
SELECT {_COLUMNS} FROM mendline.fix_jobs
WHERE state = 'approved'
   OR (state = 'proposed' AND decision ->> 'verdict' = 'auto')
   OR (state = 'applying' AND lease_until < now())
ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
"""

_RENEW = """
UPDATE mendline.fix_jobs SET lease_until = now() + make_interval(secs => $3)
WHERE id = ANY($1::bigint[]) AND owner = $2 AND state = 'applying'
RETURNING id
"""

_LIST = f"""
SELECT {_COLUMNS} FROM mendline.fix_jobs
WHERE ($1::text[] IS NULL OR state = ANY($1::text[])) AND ($2::bigint IS NULL OR issue_id = $2)
  AND ($3::bigint IS NULL OR id < $3)
ORDER BY id DESC LIMIT $4
"""

_COUNTS = """
SELECT state, count(*) AS fixes FROM mendline.fix_jobs
WHERE $1::bigint IS NULL OR issue_id = $1 GROUP BY state
"""

# The releases of the fix's service first seen after it was applied (only those seen since
# are looked up: an event's release is its first sighting only if no older event had it).
_RELEASES_AFTER = """
WITH fix AS (
    SELECT f.applied_at, i.service FROM mendline.fix_jobs f
    JOIN mendline.issues i ON i.id = f.issue_id WHERE f.id = $1),
recent AS (
    SELECT DISTINCT e.release FROM mendline.events e, fix
    WHERE e.service = fix.service AND e.received_at > fix.applied_at AND e.release IS NOT NULL)
SELECT recent.release FROM recent, fix,
    LATERAL (SELECT min(e.received_at) AS first_seen FROM mendline.events e
             WHERE e.service = fix.service AND e.release = recent.release) seen
WHERE seen.first_seen > fix.applied_at
ORDER BY seen.first_seen, recent.release
"""

# The newest finding of each open issue, when it has a patch nobody marked wrong and neither
# it nor any other finding of its issue has an open fix; a finding that had a fix (even a
# final one) is not proposed again by the worker: a person may, with `mendline fix propose`.
_UNPROPOSED = f"""
SELECT f.id FROM mendline.findings f
JOIN mendline.issues i ON i.id = f.issue_id
WHERE f.fix_patch IS NOT NULL AND f.verdict IS DISTINCT FROM 'wrong'
  AND i.status = 'unresolved'
  AND f.id = (SELECT max(n.id) FROM mendline.findings n WHERE n.issue_id = f.issue_id)
  AND NOT EXISTS (SELECT 1 FROM mendline.fix_jobs j WHERE j.finding_id = f.id)
  AND NOT EXISTS (SELECT 1 FROM mendline.fix_jobs j
                  WHERE j.issue_id = f.issue_id AND j.state NOT IN {_FINAL})
ORDER BY f.id LIMIT $1
"""

# Fixes of a repository that began applying without a person in the last $2 seconds.
_AUTOMATIC_SINCE = """
SELECT count(*) FROM mendline.fix_jobs
WHERE repository = $1 AND approvals_needed = 0 AND decision ->> 'verdict' = 'auto'
  AND applying_since > now() - make_interval(secs => $2)
"""

# Fixes whose branches may exist for a reason: delivered, being applied, or claimable (a
# worker may claim one and make its worktree between this query and the cleanup's look at
# the repository). Only rejected and failed fixes never need one. Every repository's: two
# entries of the policy may name one clone (or an entry was renamed), and fix ids are
# global, so a branch name never stands for two fixes.
_LIVE = """
SELECT id, issue_id FROM mendline.fix_jobs WHERE state NOT IN ('rejected', 'failed')
"""

_LAST_POLICY = """
SELECT after::text FROM mendline.audit_log
WHERE target = 'policy:fixes' AND action = 'policy.change' ORDER BY id DESC LIMIT 1
"""

# A deployed fix whose window has passed, once its release was seen running (an event of its
# service on it): a release nothing ever came from tells nothing, and verifies nothing.
_DUE = """
SELECT f.id FROM mendline.fix_jobs f JOIN mendline.issues i ON i.id = f.issue_id
WHERE f.state = 'deployed' AND f.deployed_at <= now() - make_interval(secs => $1)
  AND EXISTS (SELECT 1 FROM mendline.events e
              WHERE e.service = i.service AND e.release = f.release)
ORDER BY f.deployed_at, f.id LIMIT 1 FOR UPDATE OF f SKIP LOCKED
"""

# The first event of the fix's issue on the deployed release, or on a release of its service
# first seen after the deployed one was (after it was deployed, when no event had it): such
# a release is taken to carry the fix too. Events without a release tell nothing, nor events
# from before the fix was applied (the ones that made the issue).
_REGRESSING_EVENT = """
WITH fix AS (
    SELECT f.issue_id, f.release, f.deployed_at, f.applied_at, i.service FROM mendline.fix_jobs f
    JOIN mendline.issues i ON i.id = f.issue_id WHERE f.id = $1),
since AS (
    SELECT coalesce((SELECT min(e.received_at) FROM mendline.events e
                     WHERE e.service = fix.service AND e.release = fix.release),
                    fix.deployed_at) AS at
    FROM fix)
SELECT e.event_id, e.release, e.received_at FROM mendline.events e, fix, since
WHERE e.issue_id = fix.issue_id AND e.release IS NOT NULL
  AND e.received_at > coalesce(fix.applied_at, fix.deployed_at)
  AND (e.release = fix.release
       OR (e.received_at > since.at AND NOT EXISTS (
               SELECT 1 FROM mendline.events o
               WHERE o.service = fix.service AND o.release = e.release
                 AND o.received_at <= since.at)))
ORDER BY e.received_at LIMIT 1
"""


@dataclass(frozen=True)
class StoredFix:
    """A fix as stored: where it stands (``state``), the policy's ``decision`` with its
    reasons, who asked for it and who approved it, its lease while it is being applied, what
    applying and verifying did, and when each step happened."""

    id: int
    finding_id: int
    issue_id: int
    state: FixState
    #: The finding's patch; ``mapped_patch`` the same with repository paths (the policy's).
    patch: str
    mapped_patch: str | None
    repository: str | None
    decision: PolicyDecision
    approvals_needed: int
    #: The names of the people who approved it, in order.
    approvals: tuple[str, ...]
    requested_by: str
    requested_auth: AuthMethod
    created_at: datetime
    updated_at: datetime
    approved_at: datetime | None
    rejected_at: datetime | None
    rejected_by: str | None
    rejected_reason: str | None
    #: The worker (or person's process) applying it, until ``lease_until``; kept afterwards.
    owner: str | None
    lease_until: datetime | None
    attempts: int
    applying_since: datetime | None
    verification: Verification | None
    delivery: Delivery | None
    #: Why it failed, or which event showed it regressed.
    error: str | None
    applied_at: datetime | None
    failed_at: datetime | None
    release: str | None
    deployed_at: datetime | None
    verified_at: datetime | None
    regressed_at: datetime | None
    rolled_back_at: datetime | None
    rollback_delivery: Delivery | None

    @property
    def branch(self) -> str:
        """The branch the fix is committed on."""
        return fix_branch(self.issue_id, self.id)

    @property
    def verdict_label(self) -> str:
        """The policy's verdict in a word, with the approvals so far of one that needs them:
        ``auto``, ``approval 1/2``, ``deny``."""
        if self.decision.verdict == "approval":
            return f"approval {len(self.approvals)}/{self.approvals_needed}"
        return self.decision.verdict

    def as_json(self) -> dict[str, Any]:
        """The fix as JSON values (what ``--json`` prints): every field, the decision without
        its mapped patch (``mapped_patch`` holds it), and the ``branch``."""
        shown = {field.name: _json_value(getattr(self, field.name)) for field in fields(self)}
        shown["decision"] = self.decision.model_dump(mode="json", exclude={"mapped_patch"})
        shown["branch"] = self.branch
        return shown


@dataclass(frozen=True)
class Handover:
    """What finishing a fix did: ``done`` when the caller still held it and it moved;
    otherwise ``reason`` says why not (its lease was taken over by another worker, or it
    left ``applying`` meanwhile). ``fix`` is the fix as it is now."""

    done: bool
    fix: StoredFix
    reason: str = ""


@translating
class FixStore(AuditedStore):
    """Fixes and their moves. Each move locks the fix, asks ``check_transition``, changes it
    and writes its audit row (action ``fix.<verb>``, target ``fix:<id>``, the fields that
    changed before and after) in one transaction; ``audit`` writes the row
    (``append_audit``), ``origin`` is where the changes come from (``cli@host``). People act
    as themselves; mendline's workers as ``SYSTEM_ACTOR``.

    Refusals come out as PermissionDenied, IllegalTransition, FixNotFound, FindingNotFound or
    RejectedData; database failures as DatabaseUnavailable or RejectedData."""

    def __init__(self, pool: asyncpg.Pool, audit: AuditWriter, origin: str = "") -> None:
        super().__init__(pool, audit, origin)
        # What a settled fix does to its issue and finding, in the settling transaction.
        self._issues = IssueActions(pool, audit, origin)

    async def propose(self, actor: Actor, finding_id: int, decision: PolicyDecision) -> StoredFix:
        """A fix of finding ``finding_id``'s patch, as the policy decided: the finding's open
        fix when it has one (nothing new then); a ``deny`` stored straight as ``rejected`` by
        mendline, with the policy's reasons, so the queue shows why. FindingNotFound when
        there is no such finding, or it has no patch."""
        authorize(actor, "fix.propose")
        async with self._changing() as conn:
            finding = await conn.fetchrow(
                "SELECT issue_id, fix_patch FROM mendline.findings WHERE id = $1", finding_id
            )
            if finding is None or not finding["fix_patch"]:
                raise FindingNotFound(
                    f"there is no finding {finding_id}"
                    if finding is None
                    else f"finding {finding_id} has no patch: there is nothing to apply",
                    hint="`mendline findings list` shows the findings",
                )
            row = await conn.fetchrow(
                _PROPOSE,
                finding_id,
                finding["issue_id"],
                finding["fix_patch"],
                decision.mapped_patch,
                decision.repository,
                decision.model_dump_json(exclude={"mapped_patch"}),
                _approvals_needed(decision),
                actor.name,
                actor.auth,
            )
            if row is None:
                return _stored(await conn.fetchrow(_OPEN_FIX, finding_id))
            fix = _stored(row)
            await self._record(conn, actor, "fix.propose", f"fix:{fix.id}", None, _proposal(fix))
            if decision.verdict == "deny":
                why = "; ".join(decision.reasons) or "the fix policy denies it"
                return await self._move(
                    conn, SYSTEM_ACTOR, fix.id, "rejected", SYSTEM_ACTOR.name, why
                )
            return fix

    async def approve(self, actor: Actor, fix_id: int, note: str | None = None) -> StoredFix:
        """Record ``actor``'s approval of a proposed fix; it becomes ``approved`` once
        ``approvals_needed`` different people approved it (with 2, whoever asked for it is
        at most one of them: nobody approves it alone). A fix the policy denies cannot be
        approved (IllegalTransition); the same person approving twice is RejectedData."""
        authorize(actor, "fix.approve")
        async with self._changing() as conn:
            fix = await self._locked(conn, fix_id)
            _check_approvable(fix, actor)
            await conn.execute(
                """INSERT INTO mendline.fix_approvals (fix_id, approver, user_id, note)
                   VALUES ($1, $2, $3, $4)""",
                fix_id,
                actor.name,
                actor.user_id,
                note,
            )
            also = {"note": note} if note else None
            if len(fix.approvals) + 1 < fix.approvals_needed:
                after = await self._locked(conn, fix_id)
                await self._audit_change(conn, actor, "fix.approve", fix, after, also)
                return after
            return await self._move(conn, actor, fix_id, "approved", also=also, was=fix)

    async def reject(self, actor: Actor, fix_id: int, reason: str) -> StoredFix:
        """Reject a proposed or approved fix, saying why; it is final (the finding may be
        proposed again)."""
        authorize(actor, "fix.reject")
        async with self._changing() as conn:
            return await self._move(conn, actor, fix_id, "rejected", actor.name, reason)

    async def claim(
        self, owner: str, lease_seconds: float, limit: int, max_attempts: int = 3
    ) -> list[StoredFix]:
        """Take up to ``limit`` fixes to apply, for ``lease_seconds``, as mendline: approved
        ones, proposed ones the policy lets go without a person (``auto``), and ones whose
        applier's lease ran out (killed mid-apply). SKIP LOCKED lets workers claim side by
        side; the lease is committed at once. A fix claimed ``max_attempts`` times already
        is not taken again but moved to ``failed`` ("gave up after N attempts")."""
        taken: list[StoredFix] = []
        async with self._changing() as conn:
            for row in await conn.fetch(_CLAIMABLE, limit):
                fix = _stored(row)
                if fix.state == "applying" and fix.attempts >= max_attempts:
                    why = f"gave up after {fix.attempts} attempts"
                    await self._move(conn, SYSTEM_ACTOR, fix.id, "failed", why, None)
                    continue
                also = _why_applied(fix)
                moved = await self._move(
                    conn, SYSTEM_ACTOR, fix.id, "applying", owner, lease_seconds, also=also
                )
                taken.append(moved)
        return taken

    async def claim_one(
        self, actor: Actor, owner: str, fix_id: int, lease_seconds: float
    ) -> StoredFix:
        """Take one fix to apply now, for a person (``mendline fix apply ID``): an approved
        fix, a proposed one the policy lets go (``auto``), or one whose applier's lease ran
        out. A proposed fix that needs approval, or one being applied, is refused
        (IllegalTransition, with the reason)."""
        authorize(actor, "fix.apply")
        async with self._changing() as conn:
            fix = await self._locked(conn, fix_id)
            if fix.state == "proposed" and fix.decision.verdict != "auto":
                raise _needs_approval(fix)
            return await self._move(
                conn, actor, fix_id, "applying", owner, lease_seconds, also=_why_applied(fix)
            )

    async def renew(self, owner: str, fix_ids: list[int], lease_seconds: float) -> list[int]:
        """Extend the lease of the fixes ``owner`` is still applying; returns their ids (a
        fix missing from them was taken over, or left ``applying``)."""
        rows = await self.pool.fetch(_RENEW, fix_ids, owner, lease_seconds)
        return sorted(row["id"] for row in rows)

    async def finish_applied(
        self,
        owner: str,
        fix_id: int,
        delivery: Delivery,
        verification: Verification,
        *,
        actor: Actor = SYSTEM_ACTOR,
    ) -> Handover:
        """The fix ``owner`` was applying is committed and delivered (``delivery``), its
        verification passed: it becomes ``applied``. Only while ``owner`` holds it: else
        nothing changes and the Handover says why. A failed verification is finished with
        ``finish_failed`` (ValueError here)."""
        if not verification.passed:
            raise ValueError("a fix whose verification failed is finished with finish_failed")
        args = (delivery.model_dump_json(), verification.model_dump_json())
        return await self._finish(actor, owner, fix_id, "applied", args)

    async def finish_failed(
        self,
        owner: str,
        fix_id: int,
        reason: str,
        verification: Verification | None = None,
        *,
        actor: Actor = SYSTEM_ACTOR,
    ) -> Handover:
        """The fix ``owner`` was applying could not be applied or did not verify
        (``reason``): it becomes ``failed``, for good. Only while ``owner`` holds it: else
        nothing changes and the Handover says why."""
        args = (reason, verification.model_dump_json() if verification else None)
        return await self._finish(actor, owner, fix_id, "failed", args)

    async def give_back(self, owner: str, fix_id: int, decision: PolicyDecision) -> Handover:
        """The fix ``owner`` was about to apply goes back to ``proposed`` with the policy's
        ``decision`` now (it wants a person, or more approvals than the fix has; its
        approvals so far still count), audited ``fix.give_back`` by mendline. Only while
        ``owner`` holds it."""
        args = (decision.model_dump_json(exclude={"mapped_patch"}), _approvals_needed(decision))
        return await self._finish(SYSTEM_ACTOR, owner, fix_id, "proposed", args)

    async def deployed(self, actor: Actor, fix_id: int, release: str) -> StoredFix:
        """An applied fix is in production, in ``release``: from now on its issue's events
        on that release (or a later one) say whether it worked (``settle_deployed``)."""
        authorize(actor, "fix.deployed")
        async with self._changing() as conn:
            return await self._move(conn, actor, fix_id, "deployed", release)

    async def releases_after(self, fix_id: int) -> list[str]:
        """The releases of the fix's service first seen (in its events) after the fix was
        applied, oldest first: the ones that may carry it, for git to tell which do. Empty
        while it is not applied. A release none of whose events was an error is not known."""
        async with self.pool.acquire() as conn:
            await self._fix(conn, fix_id)
            return [row["release"] for row in await conn.fetch(_RELEASES_AFTER, fix_id)]

    async def unproposed(self, limit: int = 50) -> list[int]:
        """The ids of findings the heal stage should propose a fix of: the newest finding of
        each unresolved issue, with a patch, not marked wrong, that never had a fix, while
        its issue has no open fix; oldest first, at most ``limit``."""
        return [row["id"] for row in await self.pool.fetch(_UNPROPOSED, limit)]

    async def automatic_since(self, repository: str, seconds: float) -> int:
        """How many fixes of ``repository`` began applying without a person in the last
        ``seconds`` (the policy's ``max_per_hour`` reads it)."""
        return int(await self.pool.fetchval(_AUTOMATIC_SINCE, repository, seconds))

    async def live_branches(self) -> set[str]:
        """The branches of every fix (of any repository) that was delivered, is being
        applied, or may be claimed by a worker any moment (approved, or proposed), the fix's
        and its revert's: what a cleanup after a crash must keep, while other workers go
        on."""
        rows = await self.pool.fetch(_LIVE)
        return {
            name(row["issue_id"], row["id"]) for row in rows for name in (fix_branch, revert_branch)
        }

    async def record_policy(self, digest: str, source: str) -> bool:
        """Note the fix policy in use (its SHA-256 and where it is from) in the audit trail
        when it differs from the one noted last: ``policy.change`` by mendline on
        ``policy:fixes``. Whether it was new. Workers starting at once note it once."""
        async with self._changing() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", AUDIT_LOCK)
            last = await conn.fetchval(_LAST_POLICY)
            before = None if last is None else json.loads(last)
            if before is not None and before.get("sha256") == digest:
                return False
            after = {"sha256": digest, "source": source}
            await self._record(conn, SYSTEM_ACTOR, "policy.change", "policy:fixes", before, after)
            return True

    async def settle_deployed(self, window_seconds: float, limit: int = 100) -> list[StoredFix]:
        """Judge the deployed fixes whose ``window_seconds`` since their deployment have
        passed and whose release was seen running (an event of their service on it; until
        then they stay deployed), up to ``limit``, each in a transaction of its own: with no
        event of their
        issue on the deployed release, or on a release first seen after it, they become
        ``verified`` and their issue resolved, with a note; with one, ``regressed`` and
        their finding marked wrong, naming the event. Returns them as they became."""
        settled: list[StoredFix] = []
        for _ in range(limit):
            async with self._changing() as conn:
                fix_id = await conn.fetchval(_DUE, window_seconds)
                if fix_id is None:
                    break
                settled.append(await self._settle(conn, fix_id, window_seconds))
        return settled

    async def rollback(self, actor: Actor, fix_id: int, delivery: Delivery) -> StoredFix:
        """An applied (or deployed, verified, regressed) fix was reverted, as ``delivery``
        says (the revert's branch and commit): it becomes ``rolled_back``, for good."""
        authorize(actor, "fix.rollback")
        async with self._changing() as conn:
            return await self._move(conn, actor, fix_id, "rolled_back", delivery.model_dump_json())

    async def get(self, fix_id: int) -> StoredFix:
        """One fix; FixNotFound when there is none with that id."""
        async with self.pool.acquire() as conn:
            return await self._fix(conn, fix_id)

    async def open_fix(self, finding_id: int) -> StoredFix | None:
        """The fix of finding ``finding_id`` that is not final, when it has one (proposing
        again returns it)."""
        row = await self.pool.fetchrow(_OPEN_ONLY, finding_id)
        return _stored(row) if row is not None else None

    async def issue_title(self, issue_id: int) -> str | None:
        """The title of a fix's issue (for people reading the fix); None when there is none."""
        title: str | None = await self.pool.fetchval(
            "SELECT title FROM mendline.issues WHERE id = $1", issue_id
        )
        return title

    async def issue_titles(self, issue_ids: Collection[int]) -> dict[int, str]:
        """The titles of the fixes' issues, by issue id (one missing when there is none)."""
        rows = await self.pool.fetch(
            "SELECT id, title FROM mendline.issues WHERE id = ANY($1::bigint[])", list(issue_ids)
        )
        return {row["id"]: row["title"] for row in rows}

    async def counts(self, issue_id: int | None = None) -> dict[FixState, int]:
        """How many fixes (of issue ``issue_id``) are in each state (a state none is in is
        missing)."""
        rows = await self.pool.fetch(_COUNTS, issue_id)
        return {row["state"]: row["fixes"] for row in rows}

    # -- the one way a fix moves ----------------------------------------------------------

    async def _move(
        self,
        conn: _Conn,
        actor: Actor,
        fix_id: int,
        wanted: FixState,
        *args: Any,
        also: dict[str, Any] | None = None,
        was: StoredFix | None = None,
    ) -> StoredFix:
        """Lock the fix, ask check_transition, move it to ``wanted`` (``args`` are the move's
        own parameters, see ``_SETS``) and write its audit row, from ``was`` (the fix as the
        caller found it, before its own changes in this transaction) or as locked, with
        ``also`` added to its after."""
        before = await self._locked(conn, fix_id)
        if (before.state, wanted) == ("applying", "applying"):
            await _check_lease_ran_out(conn, before)  # then taken over: applying again
        else:
            check_transition(before.state, wanted)
        after = _stored(await conn.fetchrow(_MOVES[wanted], fix_id, wanted, *args))
        await self._audit_change(conn, actor, _ACTIONS[wanted], was or before, after, also)
        return after

    async def _finish(
        self, actor: Actor, owner: str, fix_id: int, wanted: FixState, args: tuple[Any, ...]
    ) -> Handover:
        async with self._changing() as conn:
            fix = await self._locked(conn, fix_id)
            if fix.state != "applying":
                return Handover(False, fix, f"fix {fix_id} is {fix.state} now, not applying")
            if fix.owner != owner:
                reason = f"fix {fix_id} was taken over by {fix.owner}: {owner}'s lease ran out"
                return Handover(False, fix, reason)
            return Handover(True, await self._move(conn, actor, fix_id, wanted, *args))

    async def _settle(self, conn: _Conn, fix_id: int, window_seconds: float) -> StoredFix:
        event = await conn.fetchrow(_REGRESSING_EVENT, fix_id)
        if event is not None:
            at = event["received_at"]
            why = f"event {event['event_id']} of release {event['release']} at {at.isoformat()}"
            fix = await self._move(conn, SYSTEM_ACTOR, fix_id, "regressed", why)
            note = f"its fix {fix_id} regressed: {why}"
            await self._issues.mark_finding_within(
                conn, SYSTEM_ACTOR, fix.finding_id, "wrong", note
            )
            return fix
        fix = await self._move(conn, SYSTEM_ACTOR, fix_id, "verified")
        note = (
            f"fixed by mendline fix {fix_id} ({fix.branch}), deployed in {fix.release}: "
            f"no event of the issue for {window_seconds:g} s since"
        )
        # An issue merged meanwhile is left alone: its events live on in the other one.
        with contextlib.suppress(IssueNotFound):
            await self._issues.resolve_within(conn, SYSTEM_ACTOR, fix.issue_id, note, "fix")
        return fix

    async def _audit_change(
        self,
        conn: _Conn,
        actor: Actor,
        action: str,
        before: StoredFix,
        after: StoredFix,
        also: dict[str, Any] | None,
    ) -> None:
        was, now = changed_fields(_audit_form(before), _audit_form(after)) or ({}, {})
        await self._record(conn, actor, action, f"fix:{after.id}", was, {**now, **(also or {})})

    async def _locked(self, conn: _Conn, fix_id: int) -> StoredFix:
        return await self._fix(conn, fix_id, lock=True)

    async def _fix(self, conn: _Conn, fix_id: int, *, lock: bool = False) -> StoredFix:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM mendline.fix_jobs WHERE id = $1"
            + (" FOR UPDATE" if lock else ""),
            fix_id,
        )
        if row is None:
            raise FixNotFound(f"there is no fix {fix_id}", hint=_FIXES_HINT)
        return _stored(row)

    # Last: in the class body, the name ``list`` is this method from here on.
    async def list(
        self,
        state: FixState | Collection[FixState] | None = None,
        issue_id: int | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[StoredFix]:
        """The fixes, newest first: in ``state`` (or in any of several), of issue
        ``issue_id``; at most ``limit``. The next page: ``before_id`` the last id."""
        states = [state] if isinstance(state, str) else None if state is None else list(state)
        rows = await self.pool.fetch(_LIST, states, issue_id, before_id, limit)
        return [_stored(row) for row in rows]


async def connect_fixes(
    settings: Settings, audit: AuditWriter = append_audit, origin: str = "", size: int = 2
) -> FixStore:
    """A FixStore on a new pool, after applying pending migrations; ``audit`` writes each
    move's audit row in its transaction (``append_audit``)."""
    pool = await migrated_pool(settings.database_url.get_secret_value(), size)
    return FixStore(pool, audit, origin)


def _approvals_needed(decision: PolicyDecision) -> int:
    """People who must approve: none when the policy lets it go or denies it; at least one
    when it asks for approval."""
    if decision.verdict != "approval":
        return 0
    return max(1, decision.approvals_needed)


def _check_approvable(fix: StoredFix, actor: Actor) -> None:
    if fix.decision.verdict == "deny":
        reasons = "; ".join(fix.decision.reasons) or "no reason given"
        raise IllegalTransition(
            f"fix {fix.id} cannot be approved: the fix policy denies it ({reasons})",
            current=fix.state,
            wanted="approved",
        )
    check_transition(fix.state, "approved")
    if actor.name in fix.approvals:
        missing = fix.approvals_needed - len(fix.approvals)
        raise RejectedData(
            f"{actor.name} approved fix {fix.id} already; it needs {missing} more approval(s),"
            " from someone else",
            sqlstate="23505",
        )


def _needs_approval(fix: StoredFix) -> IllegalTransition:
    have = f"has {len(fix.approvals)}: {', '.join(fix.approvals)}" if fix.approvals else "has none"
    reasons = "; ".join(fix.decision.reasons) or "the fix policy asks for it"
    return IllegalTransition(
        f"fix {fix.id} needs {fix.approvals_needed} approval(s) before it is applied"
        f" ({have}): {reasons}",
        current=fix.state,
        wanted="applying",
        hint=f"an approver runs `mendline fix approve {fix.id}`",
    )


async def _check_lease_ran_out(conn: _Conn, fix: StoredFix) -> None:
    """Return when the lease of an applying fix ran out (its applier died); else raise
    IllegalTransition: someone is applying it."""
    live = await conn.fetchval("SELECT $1::timestamptz >= now()", fix.lease_until)
    if live:
        until = fix.lease_until.isoformat() if fix.lease_until else "?"
        raise IllegalTransition(
            f"fix {fix.id} is being applied by {fix.owner} (its lease runs until {until})",
            current=fix.state,
            wanted="applying",
            hint="wait for it to finish, or for its lease to run out",
        )


def _why_applied(fix: StoredFix) -> dict[str, Any]:
    """What lets a fix be applied, for the audit row: its approvers, or the policy's reasons
    for applying it without one."""
    if fix.approvals:
        return {"approvers": list(fix.approvals)}
    return {"verdict": fix.decision.verdict, "reasons": list(fix.decision.reasons)}


def _proposal(fix: StoredFix) -> dict[str, Any]:
    return {
        "state": fix.state,
        "finding_id": fix.finding_id,
        "issue_id": fix.issue_id,
        "verdict": fix.decision.verdict,
        "reasons": list(fix.decision.reasons),
        "approvals_needed": fix.approvals_needed,
        "repository": fix.repository,
    }


# The fields a move may change, as the audit row shows them.
_TRACKED = (
    "state",
    "approvals",
    "approved_at",
    "rejected_at",
    "rejected_by",
    "rejected_reason",
    "owner",
    "lease_until",
    "attempts",
    "applying_since",
    "verification",
    "delivery",
    "error",
    "applied_at",
    "failed_at",
    "release",
    "deployed_at",
    "verified_at",
    "regressed_at",
    "rolled_back_at",
    "rollback_delivery",
)


def _audit_form(fix: StoredFix) -> dict[str, Any]:
    return {name: _json_value(getattr(fix, name)) for name in _TRACKED}


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, tuple):
        return list(value)
    return value


def _stored(row: asyncpg.Record | None) -> StoredFix:
    assert row is not None  # the fix was read or written in this transaction
    values = dict(row)
    decision = json.loads(values["decision"])
    values["decision"] = PolicyDecision.model_validate(
        {**decision, "mapped_patch": values["mapped_patch"]}
    )
    values["approvals"] = tuple(values["approvals"])
    for name in ("delivery", "rollback_delivery"):
        values[name] = Delivery.model_validate_json(values[name]) if values[name] else None
    if values["verification"]:
        values["verification"] = Verification.model_validate_json(values["verification"])
    return StoredFix(**values)
