"""The remediation store: runs requested, approved or refused, started (one per target at a
time), finished, verified and escalated; each change made with its audit row in one
transaction.

The intended flow, for the stage that watches checks and issues (wired later)::

    check "api" goes down (or an issue matches a remediation's labels or category)
    recent = await store.recent_runs(name, "check:api", since=now - 1 hour)
    running = await store.running("check:api")
    decision = remediation_decision(remediation, recent, running, now)   # pure, with reasons
    refused        -> await store.refuse(SYSTEM_ACTOR, name, target, trigger, reasons)
    needs_approval -> await store.request(..., needs_approval=True); alert people, who run
                      `mendline remediations approve RUN_ID` (or decline it)
    run            -> run = await store.request(..., needs_approval=False)   # approved
    for an approved run (just now, or by a person since):
        if await store.start(run.id, owner, lease=timeout + margin) is None: another holds
            the target (or started this run): leave it
        outcome = await run_command(argv, timeout, ...) or await call_http(...)
        await store.finish(run.id, outcome)
        run the check again -> await store.record_verification(run.id, helped)
        not helped -> alert through the routes, then await store.record_escalation(run.id)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from mendline.analyzers.policy.people import authorize
from mendline.schemas.errors import IllegalTransition, RemediationNotFound
from mendline.schemas.people import SYSTEM_ACTOR, Actor
from mendline.schemas.remediation import (
    RemediationOutcome,
    RemediationRun,
    RunState,
    check_run_transition,
    finished_state,
    trim_output,
)
from mendline.sinks.postgres._audit import AuditedStore
from mendline.sinks.postgres._errors import translating

if TYPE_CHECKING:
    _Conn = asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]

__all__ = ["AUDIT_OUTPUT_LIMIT", "START_LOCK", "RemediationStore"]

#: The characters of a run's output its audit row keeps (its head and tail); the run's row
#: keeps all that the runner kept.
AUDIT_OUTPUT_LIMIT = 4096
#: The class of the transaction-scoped advisory locks that starts of one target take turns
#: on (the second key is the target's hash): "mlrm".
START_LOCK = 0x6D6C726D

_RUNS_HINT = "`mendline remediations list` shows the runs and their ids"
_VERIFIABLE: frozenset[RunState] = frozenset({"succeeded", "failed", "timed_out"})

_COLUMNS = """id, name, target, state, trigger, reasons::text AS reasons, requested_by,
requested_at, approved_by, approved_at, owner, started_at, lease_until, finished_at,
outcome::text AS outcome, output, verified, escalated_at"""

_INSERT = f"""
INSERT INTO mendline.remediation_runs (name, target, state, trigger, reasons, requested_by,
                                       approved_by, approved_at)
VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, CASE WHEN $7::text IS NULL THEN NULL
        ELSE now() END)
RETURNING {_COLUMNS}
"""

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
        return await self._insert(
            actor, "request", name, target, trigger, reasons, state, approved_by
        )

    async def refuse(
        self, actor: Actor, name: str, target: str, trigger: str, reasons: Sequence[str]
    ) -> RemediationRun:
        """Record a run that policy refused (a cooldown, too many runs this hour), with
        ``reasons``: ``refused`` at once, nothing run."""
        authorize(actor, "remediation.run")
        return await self._insert(actor, "refuse", name, target, trigger, reasons, "refused", None)

    async def approve(self, actor: Actor, run_id: int) -> RemediationRun:
        """Approve a ``requested`` run: a worker may start it from now on."""
        authorize(actor, "remediation.run")
        async with self._changing() as conn:
            before = await self._run(conn, run_id, lock=True)
            return await self._move(
                conn,
                actor,
                "approve",
                before,
                "approved",
                "approved_by = $3, approved_at = now()",
                actor.name,
            )

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

    async def start(
        self, run_id: int, owner: str, *, lease: float = 3600.0
    ) -> RemediationRun | None:
        """Take the target's one slot for the ``approved`` run ``run_id`` and mark it
        ``running`` by ``owner`` (the worker: "monitor host:pid"); the slot is its own for
        ``lease`` seconds (give the remediation's timeout and a margin).

        None when the slot is taken (another run of the target is running) or the run was
        started already (by another worker): nothing changes, the run stays as it was.
        Starts of one target take turns, so of two at once exactly one wins. A running run
        whose lease ran out (its worker died) is ended ``failed`` (audited
        ``remediation.abandon``) and its slot taken over."""
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
            await self._abandon_stale(conn, target)
            taken = await conn.fetchval(
                "SELECT id FROM mendline.remediation_runs WHERE target = $1 AND state = 'running'",
                target,
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
        """Record that people were alerted because the run did not help; once (a second
        call changes nothing and writes no audit row)."""
        async with self._changing() as conn:
            before = await self._run(conn, run_id, lock=True)
            if before.escalated_at is not None:
                return before
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
                {"escalated": True},
            )
        return _run(row)

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
        actor: Actor,
        verb: str,
        name: str,
        target: str,
        trigger: str,
        reasons: Sequence[str],
        state: RunState,
        approved_by: str | None,
    ) -> RemediationRun:
        async with self._changing() as conn:
            row = await conn.fetchrow(
                _INSERT,
                name,
                target,
                state,
                trigger,
                json.dumps(list(reasons)),
                actor.name,
                approved_by,
            )
            assert row is not None
            after = {
                "name": name,
                "target": target,
                "trigger": trigger,
                "state": state,
                "reasons": list(reasons),
            }
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
