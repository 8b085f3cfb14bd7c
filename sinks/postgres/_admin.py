"""What people (and mendline's workers) do to issues, findings and stored events: resolve,
ignore, reopen, merge, unmerge, assign, comment on and ask to re-analyse issues, mark
findings, prune old events; each one authorized and audited."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import asyncpg

from mendline.analyzers.audit import changed_fields
from mendline.analyzers.policy.people import authorize
from mendline.analyzers.triage import newest_release
from mendline.schemas.errors import ConfigError, FindingNotFound, IssueNotFound, UserNotFound
from mendline.schemas.issue import IgnoreCondition, Resolution, check_issue_move, parse_assignee
from mendline.schemas.people import Actor
from mendline.sinks.postgres._alerts import withdraw_pending
from mendline.sinks.postgres._audit import AuditedStore
from mendline.sinks.postgres._errors import translating
from mendline.sinks.postgres._merges import Unmerged, merge_into, unmerge
from mendline.sinks.postgres._review_rules import ReviewRuleStore
from mendline.sinks.postgres._store import TRIGGERS_CHANNEL

if TYPE_CHECKING:
    _Conn = asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]

__all__ = ["IssueActions", "IssueNotFound", "Unmerged"]

# The daily partitions of mendline.events, by name (events_YYYYMMDD).
_EVENT_PARTITIONS = """
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'mendline.events'::regclass AND c.relname ~ '^events_[0-9]{8}$'
ORDER BY c.relname
"""

# What is kept per event outside the daily partitions, older than $1 deleted.
_PRUNE_ROWS = {
    "events_default": "DELETE FROM mendline.events_default WHERE received_at < $1",
    "event_ids": "DELETE FROM mendline.event_ids WHERE received_at < $1",
    "issue_counts": "DELETE FROM mendline.issue_counts WHERE minute < $1",
    "fingerprint_counts": "DELETE FROM mendline.fingerprint_counts WHERE minute < $1",
    "event_samples": "DELETE FROM mendline.event_samples WHERE hour < $1",
    "lost_events": "DELETE FROM mendline.lost_events WHERE minute < $1",
}


@translating
class IssueActions(AuditedStore):
    """The actions that change issues, findings and the stored events: one method an action,
    which the CLI, the dashboard and mendline's workers (as ``SYSTEM_ACTOR``) all call. Each
    authorizes its actor, changes and writes one audit row (its action, its target such as
    ``issue:12``, the fields that changed before and after, ``origin``) in one transaction: a
    refusal changes nothing and writes no row, and an action that would change nothing
    writes none either.

    Refusals come out as PermissionDenied, IssueNotFound, FindingNotFound or ConfigError;
    database failures as DatabaseUnavailable or RejectedData."""

    async def ignore(
        self, actor: Actor, issue_id: int, until: IgnoreCondition | None = None
    ) -> bool:
        """Stop alerting on an issue, forever or ``until`` a condition: its events are still
        stored and counted, but raise no alert (no spike, no regression) and what was waiting
        to be sent about it is withdrawn. When the condition is met (its time passed and an
        event arrives, N more events, N events within an hour) the issue comes back as
        unresolved and escalating, with an ``escalating`` alert. Ignoring an ignored issue
        again replaces its condition. Whether it changed. IssueNotFound if no issue has that
        id, or it was merged."""
        authorize(actor, "issue.ignore")
        condition = until or IgnoreCondition()
        async with self._changing() as conn:
            row = await _locked_issue_row(conn, issue_id)
            if row["kind"] == "health" and not condition.forever:
                # A check's issue is opened and closed by its check, not by events: only
                # its check's next failure could end the ignore, so it would never end.
                raise ConfigError(
                    f"issue {issue_id} is a health check's: ignore it forever (its check's"
                    " alerts stop until you reopen it) or set a maintenance window"
                )
            was = _ignore_fields(row)
            until_seen = (
                row["times_seen"] + condition.events if condition.events is not None else None
            )
            wanted = {
                "status": "ignored",
                "ignore_until": condition.until,
                "ignore_until_seen": until_seen,
                "ignore_per_hour": condition.per_hour,
            }
            if row["status"] != "ignored":
                check_issue_move(row["status"], "ignored")
            change = changed_fields(was, wanted)
            if change is None:
                return False
            await conn.execute(
                """UPDATE mendline.issues SET status = 'ignored', substatus = NULL,
                       ignored_at = now(), ignored_by = $2, ignore_until = $3,
                       ignore_until_seen = $4, ignore_per_hour = $5, resolution = NULL,
                       resolved_in_release = NULL, resolved_by = NULL, updated_at = now()
                   WHERE id = $1""",
                issue_id,
                actor.name,
                condition.until,
                until_seen,
                condition.per_hour,
            )
            await withdraw_pending(conn, issue_id, "ignored")
            before, after = change
            after["until"] = condition.describe()
            await self._record(conn, actor, "issue.ignore", f"issue:{issue_id}", before, after)
        return True

    async def resolve(
        self,
        actor: Actor,
        issue_id: int,
        note: str | None = None,
        *,
        in_next_release: bool = False,
    ) -> bool:
        """Mark an issue resolved, with an optional note on what fixed it (None or "" keeps
        the note it has): a later event reopens it as a regression, similar issues are analysed
        with the note in view, and a `resolved` trigger (same transaction) lets the alert
        stage resolve what it paged about. ``in_next_release``: the fix ships in the release
        after the issue's newest one, so only an event of a newer release reopens it (late
        events of that release or older ones do not); ConfigError when its events carry no
        release. Whether it changed (False: resolved already, that way, with that note).
        IssueNotFound if no issue has that id, or it was merged."""
        authorize(actor, "issue.resolve")
        resolution: Resolution = "next_release" if in_next_release else "now"
        async with self._changing() as conn:
            return await self.resolve_within(conn, actor, issue_id, note, resolution)

    async def resolve_within(
        self,
        conn: _Conn,
        actor: Actor,
        issue_id: int,
        note: str | None = None,
        resolution: Resolution = "now",
    ) -> bool:
        """``resolve``, in the caller's transaction on ``conn``, for a change of another store
        that resolves an issue with it (a fix verified in production: ``resolution="fix"``);
        the caller has authorized ``actor``."""
        row = await _locked_issue_row(conn, issue_id)
        status = row["status"]
        if status != "resolved":
            check_issue_move(status, "resolved")
        in_release = None
        if resolution == "next_release":
            # The release the service runs now (Sentry: the project's newest), not the
            # issue's own last one, which may be older than what is deployed.
            seen = {
                r["release"]: r["first_seen"]
                for r in await conn.fetch(
                    """SELECT release, first_seen FROM mendline.releases WHERE service = $1
                       ORDER BY first_seen DESC LIMIT 500""",
                    row["service"],
                )
            }
            in_release = newest_release(seen) or row["last_release"]
        if resolution == "next_release" and in_release is None:
            raise ConfigError(
                f"issue {issue_id}'s events carry no release, so there is no next release to"
                " wait for: resolve it now"
            )
        change = changed_fields(
            {
                "status": status,
                "resolution": row["resolution"],
                "resolved_in_release": row["resolved_in_release"],
                "resolution_note": row["resolution_note"],
            },
            {
                "status": "resolved",
                "resolution": resolution,
                "resolved_in_release": in_release,
                "resolution_note": note or row["resolution_note"],
            },
        )
        if change is None:
            return False
        resolved_at = await conn.fetchval(
            """UPDATE mendline.issues SET status = 'resolved', substatus = NULL,
                   resolved_at = CASE WHEN status = 'resolved' THEN resolved_at ELSE now() END,
                   resolution_note = coalesce($2, resolution_note), resolution = $3,
                   resolved_in_release = $4, resolved_by = $5, ignore_until = NULL,
                   ignore_until_seen = NULL, ignore_per_hour = NULL, updated_at = now()
               WHERE id = $1 RETURNING resolved_at""",
            issue_id,
            note or None,
            resolution,
            in_release,
            actor.name,
        )
        if status != "resolved":  # a new note is nothing to announce again
            await conn.execute(
                """INSERT INTO mendline.triggers (issue_id, kind, dedup_key)
                   VALUES ($1, 'resolved', $2) ON CONFLICT (dedup_key) DO NOTHING""",
                issue_id,
                f"resolved:{issue_id}:{resolved_at.isoformat()}",
            )
            await conn.execute("SELECT pg_notify($1, '')", TRIGGERS_CHANNEL)
        await self._record(conn, actor, "issue.resolve", f"issue:{issue_id}", *change)
        return True

    async def reopen(self, actor: Actor, issue_id: int) -> bool:
        """Make a resolved or ignored issue unresolved again (its resolution or ignore
        forgotten). Whether it changed (False: it was unresolved). IssueNotFound if no issue
        has that id, or it was merged (``unmerge`` brings that one back)."""
        authorize(actor, "issue.reopen")
        async with self._changing() as conn:
            row = await _locked_issue_row(conn, issue_id)
            if row["status"] == "unresolved":
                return False
            await conn.execute(
                """UPDATE mendline.issues SET status = 'unresolved', substatus = NULL,
                       resolution = NULL, resolved_in_release = NULL, resolved_by = NULL,
                       ignore_until = NULL, ignore_until_seen = NULL, ignore_per_hour = NULL,
                       updated_at = now()
                   WHERE id = $1""",
                issue_id,
            )
            await self._record(
                conn,
                actor,
                "issue.reopen",
                f"issue:{issue_id}",
                {"status": row["status"]},
                {"status": "unresolved"},
            )
        return True

    async def merge(self, actor: Actor, target: int, source: int) -> None:
        """Merge issue ``source`` into ``target`` (both of one service): its fingerprints,
        events and counts move, and later events of either fingerprint count on ``target``;
        ``unmerge`` undoes it. The audit row is on ``source`` and says into which issue
        (``merged_into``). IssueNotFound if either is missing or merged, or they are one;
        ConfigError when they are of different services or kinds."""
        authorize(actor, "issue.merge")
        if target == source:
            raise IssueNotFound(f"cannot merge issue {target} into itself")
        async with self._changing() as conn:
            rows = {
                r["id"]: r
                for r in await conn.fetch(
                    "SELECT id, status, merged_into, service, kind FROM mendline.issues"
                    " WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
                    [target, source],
                )
            }
            for issue_id in (target, source):
                if issue_id not in rows:
                    raise IssueNotFound(f"there is no issue {issue_id}")
                if rows[issue_id]["status"] == "merged":
                    raise IssueNotFound(
                        f"issue {issue_id} was merged into {rows[issue_id]['merged_into']} already"
                    )
            if rows[target]["kind"] == "health" or rows[source]["kind"] == "health":
                raise ConfigError(
                    "a health check's issue is its check's alone: it has no fingerprints to"
                    " merge, and its check would go on reporting on the merged issue"
                )
            for field in ("service", "kind"):
                if rows[target][field] != rows[source][field]:
                    raise ConfigError(
                        f"issue {source} is of {field} {rows[source][field]!r} and issue"
                        f" {target} of {rows[target][field]!r}: only issues of one {field}"
                        " merge"
                    )
            hashes = await merge_into(conn, target, source, actor.name)
            await self._record(
                conn,
                actor,
                "issue.merge",
                f"issue:{source}",
                {"status": rows[source]["status"], "merged_into": None},
                {"status": "merged", "merged_into": target, "fingerprints": len(hashes)},
            )

    async def unmerge(self, actor: Actor, issue_id: int) -> Unmerged:
        """Undo the merge of issue ``issue_id``: its fingerprints and their events (those
        that arrived after the merge too) move back from the issue that holds them, with
        their per-minute counts and their share of the count, and it is unresolved again.
        IssueNotFound when it is not merged."""
        authorize(actor, "issue.unmerge")
        async with self._changing() as conn:
            # Not locked here: unmerge locks it with the issue holding its fingerprints, in
            # id order (as the consumer and merge do), and checks it is still merged.
            row = await conn.fetchrow(
                "SELECT status, merged_into FROM mendline.issues WHERE id = $1", issue_id
            )
            if row is None:
                raise IssueNotFound(f"there is no issue {issue_id}")
            if row["status"] != "merged":
                raise IssueNotFound(f"issue {issue_id} is {row['status']}, not merged")
            done = await unmerge(conn, issue_id, actor.name)
            await self._record(
                conn,
                actor,
                "issue.unmerge",
                f"issue:{issue_id}",
                {"status": "merged", "merged_into": row["merged_into"]},
                {
                    "status": "unresolved",
                    "merged_into": None,
                    "taken_from": done.holder,
                    "fingerprints": done.fingerprints,
                    "events": done.events,
                },
            )
        return done

    async def assign(self, actor: Actor, issue_id: int, assignee: str | None) -> bool:
        """Assign an issue to ``user:NAME`` (an enabled user; a bare name is a user) or
        ``team:LABEL``, or to no one (None). Whether it changed. IssueNotFound, UserNotFound,
        or ConfigError for an assignee that is neither."""
        authorize(actor, "issue.assign")
        wanted = None
        if assignee is not None:
            kind, name = parse_assignee(assignee)
            wanted = f"{kind}:{name}"
        async with self._changing() as conn:
            row = await _locked_issue_row(conn, issue_id)
            if wanted is not None and wanted.startswith("user:"):
                known = await conn.fetchval(
                    "SELECT 1 FROM mendline.users WHERE name = $1 AND disabled_at IS NULL",
                    wanted[5:],
                )
                if known is None:
                    raise UserNotFound(f"there is no enabled user {wanted[5:]!r}")
            change = changed_fields({"assignee": row["assignee"]}, {"assignee": wanted})
            if change is None:
                return False
            await conn.execute(
                "UPDATE mendline.issues SET assignee = $2, updated_at = now() WHERE id = $1",
                issue_id,
                wanted,
            )
            await self._record(conn, actor, "issue.assign", f"issue:{issue_id}", *change)
        return True

    async def comment(self, actor: Actor, issue_id: int, body: str) -> int:
        """Add a comment (1 to 10,000 characters) to an issue's thread, by the actor; its
        id. ConfigError for an empty or too long body; IssueNotFound."""
        authorize(actor, "issue.comment")
        text = body.strip()
        if not 1 <= len(text) <= 10_000:
            raise ConfigError("a comment has 1 to 10,000 characters")
        async with self._changing() as conn:
            await _locked_issue_row(conn, issue_id)
            comment_id: int = await conn.fetchval(
                """INSERT INTO mendline.issue_comments (issue_id, author, body)
                   VALUES ($1, $2, $3) RETURNING id""",
                issue_id,
                actor.name,
                text,
            )
            await self._record(
                conn,
                actor,
                "issue.comment",
                f"issue:{issue_id}",
                None,
                {"comment_id": comment_id, "body": text},
            )
        return comment_id

    async def reanalyse(self, actor: Actor, issue_id: int) -> int | None:
        """Record that the actor asked for a fresh analysis of an issue (its audit row says
        which finding was the newest then), for the caller to run it, as
        ``mendline analyze --issue ID --fresh`` does; the new finding is stored when it is
        done. Returns the id of that newest finding, or None. IssueNotFound if no issue has
        that id, or it was merged."""
        authorize(actor, "issue.reanalyse")
        async with self._changing() as conn:
            await _locked_issue_row(conn, issue_id)
            newest: int | None = await conn.fetchval(
                "SELECT max(id) FROM mendline.findings WHERE issue_id = $1", issue_id
            )
            await self._record(
                conn,
                actor,
                "issue.reanalyse",
                f"issue:{issue_id}",
                {"finding_id": newest},
                {"analysis": "asked", "fresh": True},
            )
        return newest

    async def mark_finding(
        self,
        actor: Actor,
        finding_id: int,
        verdict: Literal["right", "wrong"],
        note: str | None = None,
    ) -> bool:
        """Record a person's verdict on a finding (and on the one it was served from: the
        same answer, named ``also_marked`` on the audit row); later similar issues are
        analysed with it, and one marked wrong is never served again. Whether it changed
        (False: it had that verdict and note). FindingNotFound if there is no such finding."""
        authorize(actor, "finding.mark")
        async with self._changing() as conn:
            return await self.mark_finding_within(conn, actor, finding_id, verdict, note)

    async def mark_finding_within(
        self,
        conn: _Conn,
        actor: Actor,
        finding_id: int,
        verdict: Literal["right", "wrong"],
        note: str | None = None,
    ) -> bool:
        """``mark_finding``, in the caller's transaction on ``conn``, for a change of another
        store that judges a finding with it (a fix that regressed); the caller has
        authorized ``actor``.

        A verdict of right teaches a review rule in the same transaction: the shape of the
        culprit line of the finding's issue, when it has one (``ReviewRuleStore.learn_within``);
        the audit row names it (``review_rule``). A verdict of wrong disables the rules this
        finding taught (``review_rules_disabled`` on the row): a rule of the same shape that
        another finding taught stays, and marking it right again does not enable it (``mendline
        review rules enable`` does)."""
        was = await conn.fetchrow(
            """SELECT verdict, verdict_note, cached_from FROM mendline.findings
               WHERE id = $1 FOR UPDATE""",
            finding_id,
        )
        if was is None:
            raise FindingNotFound(f"there is no finding {finding_id}")
        change = changed_fields(
            {"verdict": was["verdict"], "verdict_note": was["verdict_note"]},
            {"verdict": verdict, "verdict_note": note},
        )
        if change is None:
            return False
        await conn.execute(
            """UPDATE mendline.findings SET verdict = $2, verdict_note = $3,
                   verdict_at = now()
               WHERE id = $1 OR id = $4""",
            finding_id,
            verdict,
            note,
            was["cached_from"],
        )
        before, after = change
        if was["cached_from"] is not None:
            after["also_marked"] = f"finding:{was['cached_from']}"
        rules = ReviewRuleStore(self.pool, self.audit, self.origin)
        if verdict == "right":
            rule = await rules.learn_within(conn, finding_id)
            if rule is not None:
                after["review_rule"] = rule.id
        else:
            disabled = await rules.unlearn_within(conn, actor, finding_id)
            if disabled:
                after["review_rules_disabled"] = disabled
        await self._record(conn, actor, "finding.mark", f"finding:{finding_id}", before, after)
        return True

    async def prune_events(
        self, actor: Actor, retention_days: int, now: datetime | None = None
    ) -> list[str]:
        """Drop the daily event partitions older than the retention, with their event ids and
        per-minute counts; returns the dropped partitions' names. The audit row (on
        ``events``) names them and counts the rows deleted besides; a prune that removes
        nothing writes none."""
        authorize(actor, "events.prune")
        if retention_days < 1:
            raise ConfigError(f"the retention must be at least 1 day, not {retention_days}")
        cutoff: date = ((now or datetime.now(UTC)) - timedelta(days=retention_days)).date()
        cutoff_at = datetime(cutoff.year, cutoff.month, cutoff.day, tzinfo=UTC)
        async with self._changing() as conn:
            names = [r["relname"] for r in await conn.fetch(_EVENT_PARTITIONS)]
            old = [n for n in names if datetime.strptime(n[7:], "%Y%m%d").date() < cutoff]
            for name in old:
                # As the tables' owner (the app's role may not own them): see 0020.
                await conn.execute("SELECT mendline.drop_daily_partition($1)", name)
            deleted = {}
            for table, statement in _PRUNE_ROWS.items():
                status = await conn.execute(statement, cutoff_at)  # "DELETE <count>"
                deleted[table] = int(status.rsplit(" ", 1)[1])
            if old or any(deleted.values()):
                after = {
                    "retention_days": retention_days,
                    "older_than": cutoff.isoformat(),
                    "dropped_partitions": old,
                    "rows_deleted": deleted,
                }
                await self._record(conn, actor, "events.prune", "events", None, after)
        return old


async def _locked_issue_row(conn: _Conn, issue_id: int) -> Any:
    """The issue's row (its workflow fields), locked; IssueNotFound when it is missing or
    merged."""
    row = await conn.fetchrow(
        """SELECT status, kind, service, resolution, resolved_in_release, resolution_note,
                  last_release, times_seen, ignore_until, ignore_until_seen, ignore_per_hour,
                  assignee
           FROM mendline.issues WHERE id = $1 FOR UPDATE""",
        issue_id,
    )
    if row is None or row["status"] == "merged":
        raise IssueNotFound(f"there is no issue {issue_id} (or it was merged)")
    return row


def _ignore_fields(row: Any) -> dict[str, Any]:
    """An issue's status and ignore condition, as the audit row compares them."""
    return {
        "status": row["status"],
        "ignore_until": row["ignore_until"],
        "ignore_until_seen": row["ignore_until_seen"],
        "ignore_per_hour": row["ignore_per_hour"],
    }
