"""The remediation store: runs asked for (decided by policy under the target's lock: refused,
requested from a person, or approved and started), approved or declined by people, started
(one per target at a time), finished, verified and escalated; each change made with its
audit row in one transaction; and what may need a remediation (checks down, issues active).

The flow, as the heal stage's worker (mendline/stages/_remediation.py) runs it::

    for each check down now and issue active (``troubles``), each remediation that matches:
        asked = await store.ask(SYSTEM_ACTOR, remediation, subject, episode_at, trigger, owner)
            # under the target's lock: the guardrails (remediation_decision, with the runs
            # of the last hour and the target's slot) and what this down period had
            # already (remediation_step): refused (once a period), requested (once a
            # period: a person runs `mendline remediations approve RUN_ID`), or approved
            # and started at once (asked.started)
    for each approved run (a person approved it): await store.start(run.id, owner,
        lease=..., remediation=remediation)   # None: the slot is taken or a guardrail holds
    a started run: outcome = run_remediation(...); await store.finish(run.id, outcome)
        ran well and verify: run the check again -> await store.record_verification(id, ok)
        not helped, failed or timed out -> await store.record_escalation(run.id): a
            remediation_failed trigger on the subject's issue, which the alert stage routes
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg

from mendline.analyzers.policy.fixes import (
    RemediationStep,
    remediation_decision,
    remediation_step,
)
from mendline.analyzers.policy.people import authorize
from mendline.schemas.alert import REMEDIATION_FAILED
from mendline.schemas.errors import IllegalTransition, RemediationNotFound
from mendline.schemas.fixpolicy import Remediation, RemediationDecision, RemediationVerdict
from mendline.schemas.output import trim_output
from mendline.schemas.people import SYSTEM_ACTOR, Actor
from mendline.schemas.remediation import (
    RemediationOutcome,
    RemediationRun,
    RunState,
    check_run_transition,
    finished_state,
)
from mendline.sinks.postgres._audit import AuditedStore
from mendline.sinks.postgres._errors import translating
from mendline.sinks.postgres._store import TRIGGERS_CHANNEL

if TYPE_CHECKING:
    _Conn = asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]

__all__ = [
    "AUDIT_OUTPUT_LIMIT",
    "REMEDIATIONS_CHANNEL",
    "START_LOCK",
    "Asked",
    "RemediationStore",
    "Trouble",
]

#: The characters of a run's output its audit row keeps (its head and tail); the run's row
#: keeps all that the runner kept.
AUDIT_OUTPUT_LIMIT = 4096
#: The class of the transaction-scoped advisory locks that starts of one target take turns
#: on (the second key is the target's hash): "mlrm".
START_LOCK = 0x6D6C726D
#: Notified when a person approves a run: a worker starts it without waiting for its poll.
REMEDIATIONS_CHANNEL = "mendline_remediations"

_RUNS_HINT = "`mendline remediations list` shows the runs and their ids"
_VERIFIABLE: frozenset[RunState] = frozenset({"succeeded", "failed", "timed_out"})
# The runs a decision looks back on: those of the last hour (max_runs_per_hour), and of the
# cooldown when it is longer.
_HOUR = timedelta(hours=1)

_COLUMNS = """id, name, target, state, trigger, reasons::text AS reasons, requested_by,
requested_at, approved_by, approved_at, owner, started_at, lease_until, finished_at,
outcome::text AS outcome, output, verified, escalated_at, subject, episode_at, verdict"""

_INSERT = f"""
INSERT INTO mendline.remediation_runs (name, target, state, trigger, reasons, requested_by,
                                       approved_by, approved_at, subject, episode_at, verdict)
VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, CASE WHEN $7::text IS NULL THEN NULL
        ELSE now() END, $8, $9, $10)
RETURNING {_COLUMNS}
"""

_EPISODE = f"""
SELECT {_COLUMNS} FROM mendline.remediation_runs
WHERE name = $1 AND subject = $2 AND episode_at IS NOT DISTINCT FROM $3
ORDER BY id DESC
"""

_OPEN = f"""
SELECT {_COLUMNS} FROM mendline.remediation_runs
WHERE state IN ('requested', 'approved')
ORDER BY id
"""

# The checks down now (not retired), with what their down alert's labels are made of and
# the category of the finding on the trigger that told them down.
_CHECKS_DOWN = """
SELECT c.name, c.kind, c.service, c.environment, c.tags::text AS tags, s.since, s.issue_id,
       i.level, f.category, f.severity AS finding_severity
FROM mendline.checks c
JOIN mendline.check_state s ON s.check_name = c.name
LEFT JOIN mendline.issues i ON i.id = s.issue_id
LEFT JOIN LATERAL (
    SELECT f.category, f.severity FROM mendline.triggers t
    JOIN mendline.findings f ON f.trigger_id = t.id
    WHERE t.issue_id = s.issue_id AND t.kind = 'health_down'
    ORDER BY t.id DESC LIMIT 1) f ON true
WHERE c.retired_at IS NULL AND s.status = 'down'
ORDER BY c.name
"""

# The error issues unresolved and seen since $1, with the labels of their newest trigger
# (as the alert stage routes it) and their newest finding's category; since when each has
# been open (first seen, or its last regression).
_ISSUES_ACTIVE = """
SELECT i.id, i.service, i.level, coalesce(i.regressed_at, i.first_seen) AS since,
       coalesce(t.kind, 'new_issue') AS kind,
       coalesce(t.environment,
                CASE WHEN cardinality(i.environments) = 1 THEN i.environments[1] END)
           AS environment,
       t.tags::text AS tags, f.category, f.severity AS finding_severity
FROM mendline.issues i
LEFT JOIN LATERAL (
    SELECT t.kind, t.environment, t.tags FROM mendline.triggers t
    WHERE t.issue_id = i.id AND t.kind IN ('new_issue', 'regression', 'frequency')
    ORDER BY t.id DESC LIMIT 1) t ON true
LEFT JOIN LATERAL (
    SELECT f.category, f.severity FROM mendline.findings f
    WHERE f.issue_id = i.id ORDER BY f.id DESC LIMIT 1) f ON true
WHERE i.status = 'unresolved' AND i.kind = 'error' AND i.last_seen >= $1
ORDER BY i.last_seen DESC
LIMIT $2
"""

# The issue a subject's alert goes on, with the environment and tags it is routed by: a
# check's (its down issue; its tags with "check" and "check_kind", as its own alerts have),
# or an issue's (its newest trigger's; none: the alert stage reads its newest event's).
_SUBJECT_ISSUE = """
SELECT s.issue_id, c.environment,
       (c.tags || jsonb_build_object('check', c.name, 'check_kind', c.kind))::text AS tags
FROM mendline.check_state s JOIN mendline.checks c ON c.name = s.check_name
WHERE $1::text IS NOT NULL AND s.check_name = $1
UNION ALL
SELECT i.id, t.environment, t.tags::text FROM mendline.issues i
LEFT JOIN LATERAL (
    SELECT t.environment, t.tags FROM mendline.triggers t
    WHERE t.issue_id = i.id AND t.kind IN ('new_issue', 'regression', 'frequency')
    ORDER BY t.id DESC LIMIT 1) t ON true
WHERE $2::bigint IS NOT NULL AND i.id = $2
"""


@dataclass(frozen=True)
class Trouble:
    """A check down now, or an issue active: what a remediation may be for, with what its
    alert's labels are made of (``alert_labels``, ``alert_severity``) and its category.

    ``subject`` is "check:NAME" or "issue:ID"; ``since`` the start of its down period (when
    the check went down, when the issue was first seen or last regressed)."""

    subject: str
    since: datetime | None
    #: The check's name (a check down), else None.
    check: str | None
    issue_id: int | None
    #: The issue's level (a check's: its severity), and the kind of alert its labels take.
    level: str
    kind: str
    service: str | None
    environment: str | None
    tags: dict[str, str] = field(default_factory=dict)
    category: str | None = None
    finding_severity: str | None = None


@dataclass(frozen=True)
class Asked:
    """What asking for a run did: the policy's ``decision``, what was recorded of it
    (``step``, with ``why``), and the run written (None for ``none``). ``started``: the run
    is ``running``, the caller's to run and finish now."""

    decision: RemediationDecision
    step: RemediationStep
    why: str
    run: RemediationRun | None = None

    @property
    def started(self) -> bool:
        """Whether the run was started: its target's slot is the caller's."""
        return self.step == "start" and self.run is not None and self.run.state == "running"


_RECENT = f"""
SELECT {_COLUMNS} FROM mendline.remediation_runs
WHERE name = $1 AND target = $2
  AND (greatest(requested_at, started_at, finished_at) >= $3
       OR state IN ('requested', 'approved', 'running'))
ORDER BY id DESC
"""

_LIST = f"""
SELECT {_COLUMNS} FROM mendline.remediation_runs
WHERE ($1::text IS NULL OR state = $1)
  AND ($2::text IS NULL OR target = $2)
  AND ($3::text IS NULL OR name = $3)
  AND ($4::bigint IS NULL OR id < $4)
ORDER BY id DESC
LIMIT $5
"""

# Runs whose worker's lease on the target ran out: it died (or hangs) mid-run.
_ABANDON = """
UPDATE mendline.remediation_runs
SET state = 'failed', finished_at = now(),
    reasons = reasons || jsonb_build_array(
        'abandoned: its worker ' || coalesce(owner, '?') || ' did not finish it by '
        || to_char(lease_until AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC')
WHERE target = $1 AND state = 'running' AND lease_until < now()
RETURNING id, owner
"""


@translating
class RemediationStore(AuditedStore):
    """Remediation runs. ``audit`` writes an audit row in the change's transaction (action
    ``remediation.<verb>``, target ``remediation:<id>``); ``origin`` is where the changes
    come from (``cli@host``, ``monitor host:pid``), on each audit row.

    People's changes (``request``, ``refuse``, ``approve``, ``decline``) take an actor
    and need the role of "remediation.run" (approver); the worker's steps (``start``,
    ``finish``, ``record_verification``, ``record_escalation``) act as mendline itself.
    Refusals come out as PermissionDenied, RemediationNotFound or IllegalTransition;
    database failures as DatabaseUnavailable or RejectedData."""

    async def request(
        self,
        actor: Actor,
        name: str,
        target: str,
        trigger: str,
        reasons: Sequence[str],
        needs_approval: bool,
    ) -> RemediationRun:
        """A new run of the remediation ``name`` on ``target``: ``requested`` (waiting for a
        person) when ``needs_approval``, else ``approved`` by ``actor`` at once (policy let
        it go: ``reasons`` say why)."""
        authorize(actor, "remediation.run")
        state: RunState = "requested" if needs_approval else "approved"
        approved_by = None if needs_approval else actor.name
        verdict: RemediationVerdict = "needs_approval" if needs_approval else "run"
        async with self._changing() as conn:
            return await self._insert(
                conn,
                actor,
                "request",
                name,
                target,
                trigger,
                reasons,
                state,
                approved_by,
                verdict=verdict,
            )

    async def refuse(
        self, actor: Actor, name: str, target: str, trigger: str, reasons: Sequence[str]
    ) -> RemediationRun:
        """Record a run that policy refused (a cooldown, too many runs this hour), with
        ``reasons``: ``refused`` at once, nothing run."""
        authorize(actor, "remediation.run")
        async with self._changing() as conn:
            return await self._insert(
                conn,
                actor,
                "refuse",
                name,
                target,
                trigger,
                reasons,
                "refused",
                None,
                verdict="refused",
            )

    async def approve(self, actor: Actor, run_id: int) -> RemediationRun:
        """Approve a ``requested`` run: a worker may start it from now on."""
        authorize(actor, "remediation.run")
        async with self._changing() as conn:
            before = await self._run(conn, run_id, lock=True)
            approved = await self._move(
                conn,
                actor,
                "approve",
                before,
                "approved",
                "approved_by = $3, approved_at = now()",
                actor.name,
            )
            await conn.execute("SELECT pg_notify($1, '')", REMEDIATIONS_CHANNEL)
            return approved

    async def decline(self, actor: Actor, run_id: int, reason: str = "") -> RemediationRun:
        """Refuse a run that has not started (``requested`` or ``approved``), with the
        person's ``reason``."""
        authorize(actor, "remediation.run")
        said = f"declined by {actor.name}" + (f": {reason}" if reason else "")
        async with self._changing() as conn:
            before = await self._run(conn, run_id, lock=True)
            return await self._move(
                conn,
                actor,
                "decline",
                before,
                "refused",
                "reasons = reasons || jsonb_build_array($3::text)",
                said,
                after={"reason": said},
            )

    async def ask(
        self,
        actor: Actor,
        remediation: Remediation,
        subject: str,
        episode_at: datetime | None,
        trigger: str,
        owner: str,
        *,
        lease: float,
        now: datetime | None = None,
    ) -> Asked:
        """Ask for a run of ``remediation`` for ``subject`` (in its down period
        ``episode_at``), as ``actor``: decided and recorded under the lock of its target
        (``Remediation.run_target``), so that of workers asking at once one decides first
        and the others see what it did.

        The decision is ``remediation_decision`` over this remediation's runs on the target
        started in the last hour (and its cooldown) and whether the target's slot is taken
        (a run whose lease ran out is ended first, as ``start`` does), at ``now`` (the
        database's clock unless given); what is recorded of it is ``remediation_step`` over
        the runs of this down period: a refused run, a requested one (a person approves it),
        an approved one started at once by ``owner`` for ``lease`` seconds (``Asked.started``:
        the caller runs it and calls ``finish``), or nothing. The decision's reasons are on
        the run and its audit rows."""
        authorize(actor, "remediation.run")
        name, target = remediation.name, remediation.run_target
        async with self._changing() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", START_LOCK, target)
            now = now or await conn.fetchval("SELECT now()")
            decision = await self._decide(conn, remediation, now)
            episode = [_run(row) for row in await conn.fetch(_EPISODE, name, subject, episode_at)]
            step, why = remediation_step(decision, episode)
            if step == "none":
                return Asked(decision, step, why)
            reasons = list(decision.reasons)
            if step == "refuse":
                state: RunState = "refused"
                verb, verdict, approved_by = "refuse", decision.verdict, None
            elif step == "request":
                state, verb, verdict, approved_by = "requested", "request", "needs_approval", None
            else:
                state, verb, verdict, approved_by = "approved", "request", "run", actor.name
            run = await self._insert(
                conn,
                actor,
                verb,
                name,
                target,
                trigger,
                reasons,
                state,
                approved_by,
                subject=subject,
                episode_at=episode_at,
                verdict=verdict,
            )
            if step == "start":
                run = await self._take_slot(conn, run, owner, lease) or run
            return Asked(decision, step, why, run)

    async def start(
        self,
        run_id: int,
        owner: str,
        *,
        lease: float = 3600.0,
        remediation: Remediation | None = None,
        now: datetime | None = None,
    ) -> RemediationRun | None:
        """Take the target's one slot for the ``approved`` run ``run_id`` and mark it
        ``running`` by ``owner`` (the worker: "heal host:pid"); the slot is its own for
        ``lease`` seconds (give the remediation's timeout and a margin).

        None when the slot is taken (another run of the target is running) or the run was
        started already (by another worker): nothing changes, the run stays as it was.
        With ``remediation`` (the run's, from the policy), None too while its guardrails
        hold it back (its cooldown, its runs per hour, at ``now``: the database's clock
        unless given): an approved run waits for them. Starts of one target take turns, so
        of two at once exactly one wins. A running run whose lease ran out (its worker
        died) is ended ``failed`` (audited ``remediation.abandon``) and its slot taken
        over."""
        async with self._changing() as conn:
            target = await conn.fetchval(
                "SELECT target FROM mendline.remediation_runs WHERE id = $1", run_id
            )
            if target is None:
                raise _not_found(run_id)
            await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", START_LOCK, target)
            before = await self._run(conn, run_id, lock=True)
            if before.state == "running":
                return None
            check_run_transition(before.state, "running")  # before the slot is looked at
            if remediation is not None:
                now = now or await conn.fetchval("SELECT now()")
                if (await self._decide(conn, remediation, now)).verdict == "refused":
                    return None
            return await self._take_slot(conn, before, owner, lease)

    async def _decide(
        self, conn: _Conn, remediation: Remediation, now: datetime
    ) -> RemediationDecision:
        """The guardrails' decision on a new run of ``remediation`` at ``now``, the target's
        lock held: its runs started lately, and its target's slot (stale runs ended)."""
        target = remediation.run_target
        await self._abandon_stale(conn, target)
        since = now - max(_HOUR, timedelta(seconds=remediation.cooldown))
        recent = [_run(row) for row in await conn.fetch(_RECENT, remediation.name, target, since)]
        started = [run.started_at for run in recent if run.started_at is not None]
        held = await conn.fetchval(
            "SELECT 1 FROM mendline.remediation_runs WHERE target = $1 AND state = 'running'",
            target,
        )
        return remediation_decision(remediation, started, {target} if held else set(), now)

    async def _take_slot(
        self, conn: _Conn, before: RemediationRun, owner: str, lease: float
    ) -> RemediationRun | None:
        """Start the approved run ``before`` (locked, with its target's lock held), unless
        its target's slot is taken: None then."""
        await self._abandon_stale(conn, before.target)
        taken = await conn.fetchval(
            "SELECT id FROM mendline.remediation_runs WHERE target = $1 AND state = 'running'",
            before.target,
        )
        if taken is not None:
            return None
        return await self._move(
            conn,
            SYSTEM_ACTOR,
            "start",
            before,
            "running",
            "owner = $3, started_at = now(), lease_until = now() + make_interval(secs => $4)",
            owner,
            lease,
            after={"owner": owner},
        )

    async def finish(self, run_id: int, outcome: RemediationOutcome) -> RemediationRun:
        """End a ``running`` run with what running it did: ``succeeded``, ``failed``,
        ``timed_out`` or ``dry_run`` by the outcome's result; the target's slot is free."""
        state = finished_state(outcome.result)
        described = outcome.model_dump(mode="json", exclude={"output"})
        async with self._changing() as conn:
            before = await self._run(conn, run_id, lock=True)
            return await self._move(
                conn,
                SYSTEM_ACTOR,
                "finish",
                before,
                state,
                "finished_at = now(), outcome = $3::text::jsonb, output = $4",
                json.dumps(described),
                outcome.output,
                after={
                    "outcome": described,
                    "output": trim_output(outcome.output, AUDIT_OUTPUT_LIMIT),
                },
            )

    async def record_verification(self, run_id: int, helped: bool) -> RemediationRun:
        """Record whether the check, run again after the run, passed: ``verified`` true; or
        false and the run becomes ``not_helped``. Once per run, after it finished."""
        async with self._changing() as conn:
            before = await self._run(conn, run_id, lock=True)
            if before.state not in _VERIFIABLE or before.verified is not None:
                raise IllegalTransition(
                    f"a remediation run that is {before.state}"
                    + (" and verified already" if before.verified is not None else "")
                    + " cannot be verified (a finished run is, once)",
                    current=before.state,
                    wanted="not_helped" if not helped else before.state,
                )
            state: RunState = before.state if helped else "not_helped"
            row = await conn.fetchrow(
                f"""UPDATE mendline.remediation_runs SET state = $2, verified = $3
                    WHERE id = $1 RETURNING {_COLUMNS}""",
                run_id,
                state,
                helped,
            )
            await self._audit_run(
                conn,
                SYSTEM_ACTOR,
                "verify",
                run_id,
                {"state": before.state, "verified": None},
                {"state": state, "verified": helped},
            )
        return _run(row)

    async def record_escalation(self, run_id: int) -> RemediationRun:
        """Tell people that the run did not help (it failed, ran out of time, or its check
        failed again afterwards) and record it, in one transaction: a ``remediation_failed``
        trigger on its subject's issue (a check's down issue, or the issue itself), with the
        run in its details, which the alert stage routes like the others (by the issue's
        service and level, and a check's environment and tags). Once: a second call changes
        nothing and writes no audit row. A run without a subject, or whose subject has no
        issue, is recorded escalated with no trigger (its audit row says so)."""
        async with self._changing() as conn:
            before = await self._run(conn, run_id, lock=True)
            if before.escalated_at is not None:
                return before
            trigger_id, issue_id = await self._escalation_trigger(conn, before)
            row = await conn.fetchrow(
                f"""UPDATE mendline.remediation_runs SET escalated_at = now()
                    WHERE id = $1 RETURNING {_COLUMNS}""",
                run_id,
            )
            await self._audit_run(
                conn,
                SYSTEM_ACTOR,
                "escalate",
                run_id,
                {"escalated": False},
                {"escalated": True, "issue_id": issue_id, "trigger_id": trigger_id},
            )
        return _run(row)

    async def _escalation_trigger(
        self, conn: _Conn, run: RemediationRun
    ) -> tuple[int | None, int | None]:
        """The remediation_failed trigger of ``run`` on its subject's issue: (its id, the
        issue's id), or Nones when there is no issue to tell of it."""
        kind, _, key = (run.subject or "").partition(":")
        check = key if kind == "check" else None
        issue = int(key) if kind == "issue" and key.isdigit() else None
        found = await conn.fetchrow(_SUBJECT_ISSUE, check, issue)
        if found is None or found["issue_id"] is None:
            return None, None
        outcome = run.outcome
        details = {
            "remediation": run.name,
            "run_id": run.id,
            "run_target": run.target,
            "state": run.state,
            "result": outcome.result if outcome else None,
            "ran": outcome.ran if outcome else None,
            "detail": outcome.detail if outcome else None,
            "verified": run.verified,
            "check": check,
            "subject": run.subject,
            "trigger": run.trigger,
        }
        trigger_id = await conn.fetchval(
            """INSERT INTO mendline.triggers (issue_id, kind, dedup_key, details, environment,
                                              tags)
               VALUES ($1, $2, $3, $4::jsonb, $5, $6::json)
               ON CONFLICT (dedup_key) DO NOTHING RETURNING id""",
            found["issue_id"],
            REMEDIATION_FAILED,
            f"remediation:{run.id}:{REMEDIATION_FAILED}",
            json.dumps(details),
            found["environment"],
            found["tags"],
        )
        if trigger_id is not None:
            await conn.execute("SELECT pg_notify($1, '')", TRIGGERS_CHANNEL)
        return trigger_id, found["issue_id"]

    async def recent_runs(self, name: str, target: str, since: datetime) -> list[RemediationRun]:
        """The runs of ``name`` on ``target`` that were requested, started or finished at or
        after ``since``, and those still open (requested, approved, running), newest first:
        what a cooldown and a limit of runs per hour are decided on."""
        rows = await self.pool.fetch(_RECENT, name, target, since)
        return [_run(row) for row in rows]

    async def running(self, target: str) -> RemediationRun | None:
        """The run that holds ``target``'s slot, if one does."""
        row = await self.pool.fetchrow(
            f"""SELECT {_COLUMNS} FROM mendline.remediation_runs
                WHERE target = $1 AND state = 'running'""",
            target,
        )
        return None if row is None else _run(row)

    async def open_runs(self) -> list[RemediationRun]:
        """The runs not started yet, oldest first: ``requested`` (waiting for a person) and
        ``approved`` (waiting for a worker)."""
        return [_run(row) for row in await self.pool.fetch(_OPEN)]

    async def troubles(self, active_since: datetime | None, limit: int = 500) -> list[Trouble]:
        """What may need a remediation now: every check that is down (not retired), and the
        error issues unresolved and seen at or after ``active_since`` (at most ``limit``,
        the most recently seen first; None: no issues). Issues of checks are left out: their
        checks stand for them."""
        found = []
        for row in await self.pool.fetch(_CHECKS_DOWN):
            tags = {**json.loads(row["tags"]), "check": row["name"], "check_kind": row["kind"]}
            found.append(
                Trouble(
                    subject=f"check:{row['name']}",
                    since=row["since"],
                    check=row["name"],
                    issue_id=row["issue_id"],
                    level=row["level"] or "error",
                    kind="health_down",
                    service=row["service"],
                    environment=row["environment"],
                    tags={key: str(value) for key, value in tags.items()},
                    category=row["category"],
                    finding_severity=row["finding_severity"],
                )
            )
        issues = (
            []
            if active_since is None
            else await self.pool.fetch(_ISSUES_ACTIVE, active_since, limit)
        )
        for row in issues:
            tags = json.loads(row["tags"]) if row["tags"] else {}
            found.append(
                Trouble(
                    subject=f"issue:{row['id']}",
                    since=row["since"],
                    check=None,
                    issue_id=row["id"],
                    level=row["level"],
                    kind=row["kind"],
                    service=row["service"],
                    environment=row["environment"],
                    tags={key: str(value) for key, value in (tags or {}).items()},
                    category=row["category"],
                    finding_severity=row["finding_severity"],
                )
            )
        return found

    async def get(self, run_id: int) -> RemediationRun:
        """One run; RemediationNotFound when there is none with that id."""
        async with self.pool.acquire() as conn:
            return await self._run(conn, run_id)

    async def list(
        self,
        *,
        state: RunState | None = None,
        target: str | None = None,
        name: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[RemediationRun]:
        """The runs, newest first: in ``state``, on ``target``, of the remediation ``name``;
        at most ``limit``. The next page: ``before_id`` the last id."""
        rows = await self.pool.fetch(_LIST, state, target, name, before_id, limit)
        return [_run(row) for row in rows]

    async def _insert(
        self,
        conn: _Conn,
        actor: Actor,
        verb: str,
        name: str,
        target: str,
        trigger: str,
        reasons: Sequence[str],
        state: RunState,
        approved_by: str | None,
        *,
        verdict: RemediationVerdict,
        subject: str | None = None,
        episode_at: datetime | None = None,
    ) -> RemediationRun:
        row = await conn.fetchrow(
            _INSERT,
            name,
            target,
            state,
            trigger,
            json.dumps(list(reasons)),
            actor.name,
            approved_by,
            subject,
            episode_at,
            verdict,
        )
        assert row is not None
        after: dict[str, Any] = {
            "name": name,
            "target": target,
            "trigger": trigger,
            "state": state,
            "reasons": list(reasons),
        }
        if subject is not None:
            after["subject"] = subject
        await self._audit_run(conn, actor, verb, row["id"], None, after)
        return _run(row)

    async def _move(
        self,
        conn: _Conn,
        actor: Actor,
        verb: str,
        before: RemediationRun,
        wanted: RunState,
        assignments: str,
        *values: object,
        after: dict[str, Any] | None = None,
    ) -> RemediationRun:
        """Move the locked run ``before`` to ``wanted`` (if it may), setting ``assignments``
        too (SQL of this module, whose parameters from $3 are ``values``), and audit it as
        ``remediation.<verb>``."""
        check_run_transition(before.state, wanted)
        row = await conn.fetchrow(
            f"""UPDATE mendline.remediation_runs SET state = $2, {assignments}
                WHERE id = $1 RETURNING {_COLUMNS}""",
            before.id,
            wanted,
            *values,
        )
        await self._audit_run(
            conn,
            actor,
            verb,
            before.id,
            {"state": before.state},
            {"state": wanted, **(after or {})},
        )
        return _run(row)

    async def _audit_run(
        self,
        conn: _Conn,
        actor: Actor,
        verb: str,
        run_id: int,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        await self._record(
            conn, actor, f"remediation.{verb}", f"remediation:{run_id}", before, after
        )

    async def _abandon_stale(self, conn: _Conn, target: str) -> None:
        for row in await conn.fetch(_ABANDON, target):
            await self._audit_run(
                conn,
                SYSTEM_ACTOR,
                "abandon",
                row["id"],
                {"state": "running", "owner": row["owner"]},
                {"state": "failed", "reason": "its worker's lease ran out"},
            )

    async def _run(self, conn: _Conn, run_id: int, *, lock: bool = False) -> RemediationRun:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM mendline.remediation_runs WHERE id = $1"
            + (" FOR UPDATE" if lock else ""),
            run_id,
        )
        if row is None:
            raise _not_found(run_id)
        return _run(row)


def _not_found(run_id: int) -> RemediationNotFound:
    return RemediationNotFound(f"there is no remediation run {run_id}", hint=_RUNS_HINT)


def _run(row: asyncpg.Record | None) -> RemediationRun:
    assert row is not None  # the row was read (and locked) in this transaction
    values = dict(row)
    values["reasons"] = json.loads(values["reasons"])
    outcome = values.pop("outcome")
    output = values.pop("output")
    values["outcome"] = (
        None if outcome is None else RemediationOutcome(**json.loads(outcome), output=output or "")
    )
    return RemediationRun(**values)
