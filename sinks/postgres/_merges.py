"""Merging an issue into another and undoing it: the SQL, in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mendline.schemas.errors import IssueNotFound

if TYPE_CHECKING:
    import asyncpg

    _Conn = asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]

__all__ = ["Unmerged", "merge_into", "unmerge"]

_MERGE_COUNTS = """
INSERT INTO mendline.issue_counts (issue_id, minute, count)
SELECT $1, minute, count FROM mendline.issue_counts WHERE issue_id = $2
ON CONFLICT (issue_id, minute)
DO UPDATE SET count = least(issue_counts.count::bigint + EXCLUDED.count, 2147483647)
"""

_MERGE_ISSUE = """
UPDATE mendline.issues AS t SET
    times_seen = t.times_seen + s.times_seen,
    first_release = CASE WHEN s.first_seen < t.first_seen
                         THEN s.first_release ELSE t.first_release END,
    first_seen = least(t.first_seen, s.first_seen),
    last_release = CASE WHEN s.last_seen > t.last_seen
                        THEN s.last_release ELSE t.last_release END,
    last_seen = greatest(t.last_seen, s.last_seen),
    level = CASE WHEN s.level_rank > t.level_rank THEN s.level ELSE t.level END,
    level_rank = greatest(t.level_rank, s.level_rank),
    environments = ARRAY(SELECT DISTINCT unnest(t.environments || s.environments) ORDER BY 1),
    hosts = ARRAY(SELECT DISTINCT unnest(t.hosts || s.hosts) ORDER BY 1 LIMIT 100),
    -- An ignore "until N more events" of the target counts from its own events.
    ignore_until_seen = t.ignore_until_seen + s.times_seen,
    updated_at = now()
FROM mendline.issues AS s
WHERE t.id = $1 AND s.id = $2
"""

# The events an unmerge gives back: those of the merge's fingerprints on the issue that
# holds them now; their environments (the first event of each fingerprint, release and
# environment in an hour is stored, sampled or not).
#: Events moved to another issue leave their reservoir: a slot is its issue's. They stay
#: marked as samples (-1).
_OUT_OF_RESERVOIR = "sample_slot = CASE WHEN sample_slot >= 0 THEN -1 ELSE sample_slot END"

_MOVE_EVENTS = f"""
WITH moved AS (
    UPDATE mendline.events SET issue_id = $1, {_OUT_OF_RESERVOIR}
    WHERE issue_id = $2 AND fingerprint = ANY($3::text[])
    RETURNING environment
)
SELECT coalesce(array_agg(DISTINCT environment), '{{}}') AS environments FROM moved
"""

# What the merge's fingerprints counted, each minute, and the newest of them: whichever of
# their events were stored.
_MOVED_COUNTS = """
SELECT minute, sum(count)::bigint AS n, max(last_seen) AS last_seen,
       (array_agg(last_release ORDER BY last_seen DESC))[1] AS last_release
FROM mendline.fingerprint_counts WHERE hash = ANY($1::text[])
GROUP BY minute
"""


@dataclass(frozen=True)
class Unmerged:
    """What an unmerge gave back: to which issue, from which, and how much."""

    issue_id: int
    holder: int
    fingerprints: int
    #: The occurrences its moved events stand for (an event rolled up by its emitter counts
    #: as its ``count``).
    events: int


async def merge_into(conn: _Conn, target: int, source: int, by: str) -> list[str]:
    """Move issue ``source``'s fingerprints, events and counts to ``target`` and mark it
    merged, the merge recorded with the fingerprints it moved; the rows are locked by the
    caller. Returns the fingerprints moved."""
    hashes = [
        row["hash"]
        for row in await conn.fetch(
            "UPDATE mendline.fingerprints SET issue_id = $1 WHERE issue_id = $2 RETURNING hash",
            target,
            source,
        )
    ]
    await conn.execute(
        f"UPDATE mendline.events SET issue_id = $1, {_OUT_OF_RESERVOIR} WHERE issue_id = $2",
        target,
        source,
    )
    # What the source counted in the minute an ignore of the target was made in came before
    # it, for the ignore's rate (as the target's own did).
    await conn.execute(
        """UPDATE mendline.issues t
           SET ignore_minute_seen = coalesce(t.ignore_minute_seen, 0) + c.count
           FROM mendline.issue_counts c
           WHERE t.id = $1 AND t.ignore_per_hour IS NOT NULL AND c.issue_id = $2
             AND c.minute = date_trunc('minute', t.ignored_at)""",
        target,
        source,
    )
    await conn.execute(_MERGE_COUNTS, target, source)
    await conn.execute("DELETE FROM mendline.issue_counts WHERE issue_id = $1", source)
    await conn.execute(_MERGE_ISSUE, target, source)
    await conn.execute(
        """UPDATE mendline.issues SET status = 'merged', merged_into = $1, merged_at = now(),
               substatus = NULL, resolution = NULL, resolved_in_release = NULL,
               resolved_by = NULL, ignore_until = NULL, ignore_until_seen = NULL,
               ignore_per_hour = NULL, updated_at = now()
           WHERE id = $2""",
        target,
        source,
    )
    await conn.execute(
        """INSERT INTO mendline.issue_merges (source, target, hashes, merged_by, seen_at_merge)
           SELECT $1, $2, $3::text[], $4, coalesce(sum(times_seen), 0)
           FROM mendline.fingerprints WHERE hash = ANY($3::text[])""",
        source,
        target,
        sorted(hashes),
        by,
    )
    return hashes


async def unmerge(conn: _Conn, source: int, by: str) -> Unmerged:
    """Give merged issue ``source`` back its fingerprints and their events (those that came
    after the merge too) from the issue that holds them now (the merge's target, or where
    that was merged since), their per-minute counts and their share of the count; it is
    unresolved again. IssueNotFound when it is not merged (or was merged before merges were
    recorded). The holder's first and last seen stay as they are."""
    merge = await conn.fetchrow(
        """SELECT id, target, hashes, merged_at, seen_at_merge FROM mendline.issue_merges
           WHERE source = $1 AND unmerged_at IS NULL ORDER BY id DESC LIMIT 1""",
        source,
    )
    if merge is None:
        raise IssueNotFound(f"issue {source} is not merged (or its merge was not recorded)")
    if not merge["hashes"]:  # nothing was moved (an issue without fingerprints)
        holder = merge["target"]
    else:
        holder = await _holder(conn, source, merge["hashes"])
    # Lock both in id order, as the consumer does; then make sure the holder did not change
    # while we waited (a merge of it, committed meanwhile).
    await conn.execute(
        "SELECT 1 FROM mendline.issues WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
        sorted([source, holder]),
    )
    if merge["hashes"] and await _holder(conn, source, merge["hashes"]) != holder:
        raise IssueNotFound(f"issue {source}'s fingerprints moved meanwhile: try again")
    status = await conn.fetchval("SELECT status FROM mendline.issues WHERE id = $1", source)
    if status != "merged":  # unmerged by someone else meanwhile
        raise IssueNotFound(f"issue {source} is {status}, not merged")
    await conn.execute(
        "UPDATE mendline.fingerprints SET issue_id = $1 WHERE hash = ANY($2::text[])",
        source,
        merge["hashes"],
    )
    environments = await conn.fetchval(_MOVE_EVENTS, source, holder, merge["hashes"])
    minutes = await conn.fetch(_MOVED_COUNTS, merge["hashes"])
    await _move_counts(conn, source, holder, minutes)
    # Counted on the fingerprints, not by comparing clocks: a batch that took its time
    # before the merge and committed after it counts as after.
    after_merge = await conn.fetchval(
        """SELECT coalesce(sum(times_seen), 0) - $2 FROM mendline.fingerprints
           WHERE hash = ANY($1::text[])""",
        merge["hashes"],
        merge["seen_at_merge"],
    )
    newest = max(minutes, key=lambda r: r["last_seen"], default=None)
    environments = sorted(e for e in environments if e)
    await conn.execute(
        """UPDATE mendline.issues SET status = 'unresolved', substatus = NULL,
               merged_into = NULL, merged_at = NULL,
               times_seen = times_seen + $2,
               last_release = CASE WHEN $3::timestamptz > last_seen THEN coalesce($4, last_release)
                                   ELSE last_release END,
               last_seen = greatest(last_seen, coalesce($3, last_seen)),
               environments = ARRAY(SELECT DISTINCT unnest(environments || $5::text[])
                                    ORDER BY 1),
               updated_at = now()
           WHERE id = $1""",
        source,
        after_merge,
        newest["last_seen"] if newest else None,
        newest["last_release"] if newest else None,
        environments,
    )
    await conn.execute(
        """UPDATE mendline.issues AS h SET times_seen = greatest(h.times_seen - s.times_seen, 0),
               ignore_until_seen = h.ignore_until_seen - s.times_seen,
               updated_at = now()
           FROM mendline.issues AS s
           WHERE h.id = $1 AND s.id = $2""",
        holder,
        source,
    )
    await conn.execute(
        "UPDATE mendline.issue_merges SET unmerged_at = now(), unmerged_by = $2 WHERE id = $1",
        merge["id"],
        by,
    )
    return Unmerged(source, holder, len(merge["hashes"]), sum(r["n"] for r in minutes))


async def _holder(conn: _Conn, source: int, hashes: list[str]) -> int:
    """The one issue that holds the merge's fingerprints now; IssueNotFound otherwise."""
    holders = await conn.fetch(
        "SELECT DISTINCT issue_id FROM mendline.fingerprints WHERE hash = ANY($1::text[])",
        hashes,
    )
    if len(holders) != 1 or holders[0]["issue_id"] == source:
        raise IssueNotFound(f"issue {source}'s fingerprints are not in one other issue now")
    return int(holders[0]["issue_id"])


async def _move_counts(conn: _Conn, source: int, holder: int, minutes: list[Any]) -> None:
    """Move the moved events' per-minute counts from ``holder`` back to ``source``."""
    if not minutes:
        return
    at = [r["minute"] for r in minutes]
    counts = [r["n"] for r in minutes]
    await conn.execute(
        """UPDATE mendline.issue_counts AS c SET count = greatest(c.count - u.n, 0)
           FROM unnest($2::timestamptz[], $3::bigint[]) AS u(minute, n)
           WHERE c.issue_id = $1 AND c.minute = u.minute""",
        holder,
        at,
        counts,
    )
    await conn.execute(
        "DELETE FROM mendline.issue_counts WHERE issue_id = $1 AND count = 0", holder
    )
    # An ignore of the holder noted its minute's count: what leaves that minute leaves it.
    await conn.execute(
        """UPDATE mendline.issues h
           SET ignore_minute_seen = greatest(h.ignore_minute_seen - u.n, 0)
           FROM unnest($2::timestamptz[], $3::bigint[]) AS u(minute, n)
           WHERE h.id = $1 AND h.ignore_per_hour IS NOT NULL
             AND u.minute = date_trunc('minute', h.ignored_at)""",
        holder,
        at,
        counts,
    )
    await conn.execute(
        """INSERT INTO mendline.issue_counts (issue_id, minute, count)
           SELECT $1, minute, least(n, 2147483647)
           FROM unnest($2::timestamptz[], $3::bigint[]) AS u(minute, n)
           ON CONFLICT (issue_id, minute)
           DO UPDATE SET count = least(issue_counts.count::bigint + EXCLUDED.count, 2147483647)""",
        source,
        at,
        counts,
    )
