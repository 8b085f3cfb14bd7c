"""The PostgreSQL store: one transaction per batch, idempotent by event_id."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import asyncpg
from pydantic_core import to_json

from mendline.analyzers.sampling import WHOLE, HourSample, pair_key, sample_hour
from mendline.analyzers.triage import IgnoreState, ResolvedState, ignore_ends, reopens
from mendline.schemas.errors import DatabaseUnavailable
from mendline.schemas.event import LEVELS
from mendline.schemas.issue import IgnoreCondition
from mendline.schemas.prepared import BatchResult, PreparedEvent
from mendline.schemas.settings import Settings
from mendline.sinks.postgres._errors import translated
from mendline.sinks.postgres._migrate import migrated_pool

__all__ = ["TRIGGERS_CHANNEL", "Store", "connect_store"]

#: The NOTIFY channel told when a batch made triggers (delivered when the batch commits), so
#: the analysis and alert workers need not poll often.
TRIGGERS_CHANNEL = "mendline_triggers"

if TYPE_CHECKING:
    _Conn = asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]

log = logging.getLogger("mendline.sinks")

#: issue_id, kind, dedup_key, details (JSON text)
_Trigger = tuple[int, str, str, str]

_MAX_HOSTS = 100
# A minute's count of one issue saturates there (an integer column): only a producer sending
# absurd counts reaches it, and times_seen (bigint) still counts them all.
_MAX_MINUTE_COUNT = 2**31 - 1
_MAX_ENVIRONMENTS = 50
# The (service, release) pairs a process remembers having recorded; more: it starts over.
_MAX_KNOWN_RELEASES = 10_000
# SQLSTATEs worth retrying the whole transaction for: serialization failure and deadlock.
_RETRY_TRANSACTION = {"40001", "40P01"}


class _MergedMeanwhile(Exception):
    """An issue of the batch was merged while the batch waited for its lock."""


@dataclass
class _IssueDelta:
    """What one batch adds to one issue."""

    count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    first_release: str | None = None
    last_release: str | None = None
    level_rank: int = 0
    environments: set[str] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)
    releases: set[str | None] = field(default_factory=set)

    def add(self, event: PreparedEvent) -> None:
        self.count += event.count
        first = _first_seen(event)
        if self.first_seen is None or first < self.first_seen:
            self.first_seen = first
            self.first_release = event.release
        if self.last_seen is None or event.timestamp >= self.last_seen:
            self.last_seen = event.timestamp
            self.last_release = event.release or self.last_release
        self.level_rank = max(self.level_rank, event.level_rank)
        self.environments.add(event.environment)
        self.releases.add(event.release)
        if event.host:
            self.hosts.add(event.host)

    @classmethod
    def of(cls, events: list[PreparedEvent]) -> _IssueDelta:
        """What ``events`` add to their issue."""
        delta = cls()
        for event in events:
            delta.add(event)
        return delta

    def environments_text(self) -> str:
        """The environments (as many as an issue keeps), sorted, as a JSON array."""
        return _json_array(sorted(self.environments)[:_MAX_ENVIRONMENTS])

    def hosts_text(self) -> str:
        """The hosts (as many as an issue keeps), sorted, as a JSON array."""
        return _json_array(sorted(self.hosts)[:_MAX_HOSTS])


def _json_array(texts: list[str]) -> str:
    """Texts as one JSON array, the form in which a row's list of texts travels in the
    statements below (unnest takes one text per row, and any character, the event's own
    included, can be in the texts: no separator is safe). Read back in SQL as
    ``ARRAY(SELECT jsonb_array_elements_text(<column>::jsonb))`` (``WITH ORDINALITY`` where
    their order counts)."""
    return to_json(texts).decode()


async def _init_connection(conn: _Conn) -> None:
    # json travels as its UTF-8 text: the consumer already holds the encoded JSON, so
    # nothing is decoded and encoded again.
    await conn.set_type_codec(
        "json",
        schema="pg_catalog",
        encoder=lambda value: value if isinstance(value, bytes) else value.encode(),
        decoder=lambda value: value.decode(),
        format="binary",
    )


async def connect_store(settings: Settings, *, run_migrations: bool = True) -> Store:
    """A Store on a new connection pool; applies pending migrations first by default."""
    url = settings.database_url.get_secret_value()
    if run_migrations:
        pool = await migrated_pool(url, 4, init=_init_connection)
    else:
        pool = await asyncpg.create_pool(
            url, min_size=1, max_size=4, init=_init_connection, command_timeout=60
        )
    store = Store(pool, settings)
    await store.ensure_partitions()
    return store


class Store:
    """Writes consumer batches: events, issues, fingerprints, counts and triggers at once."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings
        self._partitions_until: date | None = None
        self._known_releases: set[tuple[str, str]] = set()
        self._recording: set[tuple[str, str]] = set()
        #: What sampling draws from to pick the events a reservoir keeps (a sample needs no
        #: secret randomness; seed it for a repeatable run).
        self.sampling = random.Random()

    async def close(self) -> None:
        """Close the pool; idempotent."""
        await self.pool.close()

    async def ensure_partitions(self, today: date | None = None) -> None:
        """Make sure the daily event partitions exist from today to two days ahead."""
        today = today or datetime.now(UTC).date()
        async with self.pool.acquire() as conn:
            await conn.execute("SELECT mendline.ensure_event_partitions($1, 3)", today)
        self._partitions_until = today + timedelta(days=1)

    async def write(self, batch: list[PreparedEvent]) -> BatchResult:
        """Store the batch atomically; events already stored change nothing.

        A failure comes out as DatabaseUnavailable (waiting can cure it) or RejectedData (the
        database refused something in the batch), the driver's error as its cause.
        """
        if not batch:
            return BatchResult()
        with translated():
            now = datetime.now(UTC)
            if self._partitions_until is None or now.date() >= self._partitions_until:
                await self.ensure_partitions(now.date())
            for attempt in range(5):
                try:
                    self._recording = set()
                    async with self.pool.acquire() as conn, conn.transaction():
                        result = await self._write(conn, batch, now)
                    # Only once committed: a rolled-back batch recorded no release.
                    if len(self._known_releases) > _MAX_KNOWN_RELEASES:
                        self._known_releases.clear()
                    self._known_releases |= self._recording
                    return result
                except _MergedMeanwhile:
                    continue
                except asyncpg.PostgresError as exc:
                    if exc.sqlstate not in _RETRY_TRANSACTION or attempt == 4:
                        raise
                    await asyncio.sleep(0.05 * (attempt + 1))
            # Merged or unmerged under it five times running: a busy moment, not bad data.
            raise DatabaseUnavailable("issues kept being merged while a batch was written")

    async def _write(self, conn: _Conn, batch: list[PreparedEvent], now: datetime) -> BatchResult:
        """The steps of one batch, in one transaction (the caller's)."""
        result = BatchResult()
        events, result.conflicts = await self._new_events(conn, batch, now)
        result.duplicates = len(batch) - len(events) - len(result.conflicts)
        if not events:
            return result
        by_hash: dict[str, list[PreparedEvent]] = defaultdict(list)
        for event in events:
            by_hash[event.fingerprint].append(event)
        issue_of, created = await self._resolve_issues(conn, by_hash)
        result.new_issues = len(created)
        deltas: dict[int, _IssueDelta] = defaultdict(_IssueDelta)
        for hash_, group in by_hash.items():
            delta = deltas[issue_of[hash_]]
            for event in group:
                delta.add(event)
        ids = sorted(deltas)
        # Each fingerprint's occurrences in the batch: its counter and its minute's count.
        occurrences = {h: sum(e.count for e in by_hash[h]) for h in sorted(by_hash)}
        # The issues the batch made were inserted with their counts (and their fingerprints).
        uncounted = {h: n for h, n in occurrences.items() if issue_of[h] not in created}
        before = await self._lock_issues(conn, ids, issue_of, uncounted)
        await self._record_releases(conn, events, now)
        reopened = await self._reopened(conn, ids, before, deltas)
        escalated = await self._escalated(conn, ids, before, deltas, now)
        seen_before = [i for i in ids if i not in created]
        await self._update_issues(conn, seen_before, deltas, reopened, escalated)
        kept, replaced = await self._sample(conn, ids, created, events, issue_of, now)
        await self._insert_events(conn, kept, issue_of, now)
        await self._count_minute(conn, ids, deltas, by_hash, occurrences, now)
        result.lost = await self._record_losses(conn, events, now)
        triggers = _lifecycle_triggers(ids, created, before, reopened, escalated)
        result.regressions = len(reopened)
        # A spike of an issue that was unresolved before the batch; one the batch reopened or
        # brought back has its regression or escalating alert, not a second one.
        spiking = [i for i in ids if before[i]["status"] == "unresolved"]
        triggers.extend(await self._frequency_triggers(conn, spiking, now))
        result.trigger_kinds = await self._insert_triggers(conn, triggers, now, events, issue_of)
        result.triggers = sum(result.trigger_kinds.values())
        result.stored = len(events)
        result.sampled_out = len(events) - len(kept) + replaced
        return result

    async def _new_events(
        self, conn: _Conn, batch: list[PreparedEvent], now: datetime
    ) -> tuple[list[PreparedEvent], list[tuple[PreparedEvent, str]]]:
        """The events of the batch not stored before (nor earlier in it), their ids and
        content hashes recorded; and the conflicts: events whose id was stored, or came
        earlier in the batch, with another content hash (each with that hash). An id stored
        without a hash (before 0007) or an event without one is a plain duplicate."""
        unique: dict[str, PreparedEvent] = {}
        for event in batch:
            unique.setdefault(event.event_id, event)
        event_ids = list(unique)
        status = await conn.execute(
            """INSERT INTO mendline.event_ids (event_id, received_at, content_hash)
               SELECT id, $2, h FROM unnest($1::uuid[], $3::text[]) AS u(id, h)
               ON CONFLICT DO NOTHING""",
            event_ids,
            now,
            [e.content_hash for e in unique.values()],
        )
        seen: dict[str, str | None] = {}
        if int(status.rsplit(" ", 1)[1]) != len(event_ids):  # usual: none was seen before
            # Rows this transaction inserted carry its transaction id; the others were there.
            seen = {
                row["event_id"].hex: row["content_hash"]
                for row in await conn.fetch(
                    """SELECT event_id, content_hash FROM mendline.event_ids
                       WHERE event_id = ANY($1::uuid[])
                         AND xmin::text::bigint
                             <> pg_current_xact_id()::text::bigint % 4294967296""",
                    event_ids,
                )
            }
        fresh: list[PreparedEvent] = []
        conflicts: list[tuple[PreparedEvent, str]] = []
        taken: set[str] = set()  # by id: the same object twice in a batch is one event
        for event in batch:
            first = unique[event.event_id]
            if event.event_id in seen:
                kept = seen[event.event_id]
            elif event is first and event.event_id not in taken:
                taken.add(event.event_id)
                fresh.append(event)
                continue
            else:  # the first of the batch wins
                kept = first.content_hash
            if kept is not None and event.content_hash not in (None, kept):
                conflicts.append((event, kept))
        return fresh, conflicts

    async def _lock_issues(
        self,
        conn: _Conn,
        ids: list[int],
        issue_of: dict[str, int],
        occurrences: dict[str, int],
    ) -> dict[int, Any]:
        """Lock the batch's issues, and count the batch's ``occurrences`` (by fingerprint,
        in hash order) on their fingerprints; the issues' workflow fields as they were."""
        # Lock in id order: two consumers touching the same issues never deadlock.
        before = {
            row["id"]: row
            for row in await conn.fetch(
                """SELECT id, service, status, resolved_at, resolution, resolved_in_release,
                          times_seen, ignored_at, ignore_until, ignore_until_seen,
                          ignore_per_hour
                   FROM mendline.issues
                   WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE""",
                ids,
            )
        }
        if any(row["status"] == "merged" for row in before.values()):
            # A merge committed while we waited for the lock: its fingerprints now point
            # elsewhere. Start over, reading them again.
            raise _MergedMeanwhile()
        if not occurrences:
            return before
        held = await conn.fetch(
            """UPDATE mendline.fingerprints f SET times_seen = f.times_seen + u.n
               FROM unnest($1::text[], $2::bigint[]) AS u(hash, n)
               WHERE f.hash = u.hash RETURNING f.hash, f.issue_id""",
            list(occurrences),
            list(occurrences.values()),
        )
        if any(issue_of[row["hash"]] != row["issue_id"] for row in held):
            # An unmerge committed meanwhile: the same, the other way (rolled back).
            raise _MergedMeanwhile()
        return before

    async def _record_releases(
        self, conn: _Conn, events: list[PreparedEvent], now: datetime
    ) -> None:
        """Remember when each service's releases were first seen ("newer" for names that are
        not version numbers); a pair this process recorded before costs nothing."""
        pairs = {(e.service, e.release) for e in events if e.release} - self._known_releases
        if not pairs:
            return
        self._recording |= pairs
        ordered = sorted(pairs)
        await conn.execute(
            """INSERT INTO mendline.releases (service, release, first_seen)
               SELECT s, r, $3 FROM unnest($1::text[], $2::text[]) AS u(s, r)
               ON CONFLICT DO NOTHING""",
            [p[0] for p in ordered],
            [p[1] for p in ordered],
            now,
        )

    async def _reopened(
        self, conn: _Conn, ids: list[int], before: dict[int, Any], deltas: dict[int, _IssueDelta]
    ) -> set[int]:
        """The resolved issues the batch reopens (regressions): all of them, but an issue
        resolved in the next release only by an event of a newer release."""
        resolved = [i for i in ids if before[i]["status"] == "resolved"]
        pending = [i for i in resolved if before[i]["resolution"] == "next_release"]
        # Per service, when each release the decisions need was first seen.
        first_seen: dict[str, dict[str, datetime]] = defaultdict(dict)
        if pending:
            names = {before[i]["resolved_in_release"] for i in pending}
            for i in pending:
                names |= {r for r in deltas[i].releases if r}
            rows = await conn.fetch(
                """SELECT service, release, first_seen FROM mendline.releases
                   WHERE service = ANY($1::text[]) AND release = ANY($2::text[])""",
                sorted({before[i]["service"] for i in pending}),
                sorted(n for n in names if n),
            )
            for r in rows:
                first_seen[r["service"]][r["release"]] = r["first_seen"]
        reopened = set()
        for i in resolved:
            row = before[i]
            state = ResolvedState(row["resolution"], row["resolved_in_release"])
            releases = sorted(deltas[i].releases, key=str)
            if reopens(state, releases, first_seen.get(row["service"], {})):
                reopened.add(i)
        return reopened

    async def _escalated(
        self,
        conn: _Conn,
        ids: list[int],
        before: dict[int, Any],
        deltas: dict[int, _IssueDelta],
        now: datetime,
    ) -> dict[int, str]:
        """The ignored issues whose ignore the batch ends (they come back as escalating),
        each with why."""
        snoozed = [
            i
            for i in ids
            if before[i]["status"] == "ignored"
            and not (
                before[i]["ignore_until"] is None
                and before[i]["ignore_until_seen"] is None
                and before[i]["ignore_per_hour"] is None
            )
        ]
        if not snoozed:
            return {}
        last_hour: dict[int, int] = {}
        rated = [i for i in snoozed if before[i]["ignore_per_hour"] is not None]
        if rated:
            last_hour = {
                row["issue_id"]: row["n"]
                for row in await conn.fetch(
                    # The last hour, but not what came before the ignore: a burst it was
                    # made in does not end it at once. Whole minutes from the per-minute
                    # counts; of the minute the ignore was made in, what it counted since
                    # (the ignore noted its count then).
                    """SELECT i.id AS issue_id,
                              coalesce((SELECT sum(c.count) FROM mendline.issue_counts c
                                        WHERE c.issue_id = i.id
                                          AND c.minute > greatest($2,
                                              date_trunc('minute', i.ignored_at))), 0)
                              + CASE WHEN i.ignored_at > $2 THEN greatest(
                                    coalesce((SELECT c.count FROM mendline.issue_counts c
                                              WHERE c.issue_id = i.id
                                                AND c.minute = date_trunc('minute',
                                                                          i.ignored_at)), 0)
                                    - coalesce(i.ignore_minute_seen, 0), 0)
                                ELSE 0 END AS n
                       FROM mendline.issues i WHERE i.id = ANY($1::bigint[])""",
                    rated,
                    now - timedelta(hours=1),
                )
            }
        escalated = {}
        for i in snoozed:
            row = before[i]
            condition = IgnoreCondition(
                until=row["ignore_until"],
                per_hour=row["ignore_per_hour"],
            )
            state = IgnoreState(
                condition,
                times_seen=row["times_seen"] + deltas[i].count,
                until_seen=row["ignore_until_seen"],
                last_hour=last_hour.get(i, 0) + deltas[i].count,
            )
            why = ignore_ends(state, now)
            if why is not None:
                escalated[i] = why
        return escalated

    async def _sample(
        self,
        conn: _Conn,
        ids: list[int],
        created: set[int],
        events: list[PreparedEvent],
        issue_of: dict[str, int],
        now: datetime,
    ) -> tuple[list[tuple[PreparedEvent, int | None]], int]:
        """The batch's events to store, in its order, each with its reservoir slot (None:
        stored whole), and how many reservoir events of earlier batches they replace: per
        issue and hour, :func:`sample_hour` decides, and the replaced are deleted. The issues
        are locked, so the hour's tally is read and written by one batch at a time."""
        full = self.settings.events_full_per_hour
        if full <= 0:
            return [(event, None) for event in events], 0
        hour = now.replace(minute=0, second=0, microsecond=0)
        by_issue: dict[int, list[PreparedEvent]] = defaultdict(list)
        for event in events:
            by_issue[issue_of[event.fingerprint]].append(event)
        before: dict[int, HourSample] = {}
        known = [i for i in ids if i not in created]  # a new issue has no tally yet
        if known:
            for row in await conn.fetch(
                """SELECT issue_id, received, kept, offered, sampled, pairs
                   FROM mendline.event_samples
                   WHERE hour = $1 AND issue_id = ANY($2::bigint[])""",
                hour,
                known,
            ):
                before[row["issue_id"]] = HourSample(
                    row["received"],
                    row["kept"],
                    row["offered"],
                    row["sampled"],
                    frozenset(row["pairs"]),
                )
        place: dict[str, int | None] = {}
        after: list[HourSample] = []
        replaced: list[tuple[int, int]] = []
        for issue_id in ids:
            group = by_issue[issue_id]
            decided = sample_hour(
                before.get(issue_id, HourSample()),
                [pair_key(e.fingerprint, e.release, e.environment) for e in group],
                full=full,
                reservoir=self.settings.events_sample_per_hour,
                rng=self.sampling,
            )
            after.append(decided.after)
            replaced.extend((issue_id, slot) for slot in decided.replaced)
            for event, at in zip(group, decided.places, strict=True):
                place[event.event_id] = at
        deleted = 0
        if replaced:
            status = await conn.execute(
                """DELETE FROM mendline.events e
                   USING unnest($1::bigint[], $2::smallint[]) AS u(issue_id, slot)
                   WHERE e.received_at >= $3 AND e.received_at < $3 + interval '1 hour'
                     AND e.issue_id = u.issue_id AND e.sample_slot = u.slot""",
                [r[0] for r in replaced],
                [r[1] for r in replaced],
                hour,
            )
            deleted = int(status.rsplit(" ", 1)[1])  # "DELETE <count>"
        await conn.execute(
            """INSERT INTO mendline.event_samples
                   (issue_id, hour, received, kept, offered, sampled, pairs)
               SELECT u.issue_id, $2, u.received, u.kept, u.offered, u.sampled,
                      ARRAY(SELECT json_array_elements_text(u.pairs::json))
               FROM unnest($1::bigint[], $3::bigint[], $4::int[], $5::bigint[], $6::int[],
                           $7::text[]) AS u(issue_id, received, kept, offered, sampled, pairs)
               ON CONFLICT (issue_id, hour) DO UPDATE SET
                   received = EXCLUDED.received, kept = EXCLUDED.kept,
                   offered = EXCLUDED.offered, sampled = EXCLUDED.sampled,
                   pairs = EXCLUDED.pairs""",
            ids,
            hour,
            [a.received for a in after],
            [a.kept for a in after],
            [a.offered for a in after],
            [a.sampled for a in after],
            [json.dumps(sorted(a.pairs)) for a in after],
        )
        kept = [
            (event, None if place[event.event_id] == WHOLE else place[event.event_id])
            for event in events
            if place[event.event_id] is not None
        ]
        return kept, deleted

    async def _insert_events(
        self,
        conn: _Conn,
        kept: list[tuple[PreparedEvent, int | None]],
        issue_of: dict[str, int],
        now: datetime,
    ) -> None:
        await conn.copy_records_to_table(
            "events",
            schema_name="mendline",
            columns=_EVENT_COLUMNS,
            records=[
                (
                    e.event_id,
                    issue_of[e.fingerprint],
                    now,
                    e.timestamp,
                    e.service,
                    e.environment,
                    e.release,
                    e.host,
                    e.level,
                    e.message,
                    e.fingerprint,
                    e.payload,
                    e.partition,
                    e.offset,
                    e.count,
                    slot,
                )
                for e, slot in kept
            ],
        )

    async def _count_minute(
        self,
        conn: _Conn,
        ids: list[int],
        deltas: dict[int, _IssueDelta],
        by_hash: dict[str, list[PreparedEvent]],
        occurrences: dict[str, int],
        now: datetime,
    ) -> None:
        """Add the batch's events to their issues' and fingerprints' counts of this minute
        (the fingerprints' with the newest event: what an unmerge gives back)."""
        minute = now.replace(second=0, microsecond=0)
        hashes = list(occurrences)
        newest = [max(by_hash[h], key=attrgetter("timestamp")) for h in hashes]
        await conn.execute(
            """INSERT INTO mendline.fingerprint_counts AS f
                   (hash, minute, count, last_seen, last_release)
               SELECT h, $2, least(n, $6), t, r
               FROM unnest($1::text[], $3::bigint[], $4::timestamptz[], $5::text[])
                    AS u(h, n, t, r)
               ON CONFLICT (hash, minute) DO UPDATE SET
                   count = least(f.count::bigint + EXCLUDED.count, $6),
                   last_release = CASE WHEN EXCLUDED.last_seen >= f.last_seen
                                       THEN EXCLUDED.last_release ELSE f.last_release END,
                   last_seen = greatest(f.last_seen, EXCLUDED.last_seen)""",
            hashes,
            minute,
            list(occurrences.values()),
            [e.timestamp for e in newest],
            [e.release for e in newest],
            _MAX_MINUTE_COUNT,
        )
        await conn.execute(
            """INSERT INTO mendline.issue_counts (issue_id, minute, count)
               SELECT id, $2, least(n, $4) FROM unnest($1::bigint[], $3::bigint[]) AS u(id, n)
               ON CONFLICT (issue_id, minute)
               DO UPDATE SET count = least(issue_counts.count::bigint + EXCLUDED.count, $4)""",
            ids,
            minute,
            [deltas[i].count for i in ids],
            _MAX_MINUTE_COUNT,
        )

    async def _record_losses(self, conn: _Conn, events: list[PreparedEvent], now: datetime) -> int:
        """Add what the events' emitters reported lost to this minute's lost events, per
        service and host; how many in all."""
        lost: Counter[tuple[str, str]] = Counter()
        for event in events:
            if event.lost:
                lost[event.service, event.host or ""] += event.lost
        if not lost:
            return 0
        keys = sorted(lost)
        await conn.execute(
            """INSERT INTO mendline.lost_events (service, host, minute, lost)
               SELECT s, h, $3, n FROM unnest($1::text[], $2::text[], $4::bigint[]) AS u(s, h, n)
               ON CONFLICT (service, host, minute)
               DO UPDATE SET lost = lost_events.lost + EXCLUDED.lost""",
            [k[0] for k in keys],
            [k[1] for k in keys],
            now.replace(second=0, microsecond=0),
            [lost[k] for k in keys],
        )
        return sum(lost.values())

    async def _insert_triggers(
        self,
        conn: _Conn,
        triggers: list[_Trigger],
        now: datetime,
        events: list[PreparedEvent],
        issue_of: dict[str, int],
    ) -> dict[str, int]:
        """Insert the triggers not made before (by their dedup key); how many were new, by
        kind. The
        workers are told, once the transaction commits, when there are any. Each carries the
        environment and tags of its issue's last event in the batch: routing reads them
        there rather than in the events."""
        if not triggers:
            return {}
        newest = {issue_of[e.fingerprint]: e for e in events}  # the batch's order: the last
        inserted = await conn.fetch(
            """INSERT INTO mendline.triggers
                   (issue_id, kind, dedup_key, details, created_at, environment, tags)
               SELECT u.issue_id, u.kind, u.dedup_key, u.details, $5, u.environment, u.tags
               FROM unnest($1::bigint[], $2::text[], $3::text[], $4::jsonb[], $6::text[],
                           $7::json[]) AS u(issue_id, kind, dedup_key, details, environment,
                                            tags)
               ON CONFLICT (dedup_key) DO NOTHING RETURNING kind""",
            [t[0] for t in triggers],
            [t[1] for t in triggers],
            [t[2] for t in triggers],
            [t[3] for t in triggers],
            now,
            [newest[t[0]].environment for t in triggers],
            [to_json(newest[t[0]].tags) for t in triggers],
        )
        if inserted:
            await conn.execute("SELECT pg_notify($1, '')", TRIGGERS_CHANNEL)
        return dict(Counter(row["kind"] for row in inserted))

    async def _resolve_issues(
        self, conn: _Conn, by_hash: dict[str, list[PreparedEvent]]
    ) -> tuple[dict[str, int], set[int]]:
        """The issue of every fingerprint in the batch, creating issues for new ones."""
        hashes = list(by_hash)
        issue_of = {
            row["hash"]: row["issue_id"]
            for row in await conn.fetch(
                "SELECT hash, issue_id FROM mendline.fingerprints WHERE hash = ANY($1::text[])",
                hashes,
            )
        }
        missing = sorted(h for h in hashes if h not in issue_of)
        created: set[int] = set()
        if not missing:
            return issue_of, created
        firsts = [min(by_hash[h], key=_first_seen) for h in missing]
        # A new issue is inserted with what the batch adds to it (its fingerprint with its
        # count), so that it is not updated in the same transaction: an update of a row
        # written moments ago costs its ten indexes, and the web's trigger, a second time.
        d = [_IssueDelta.of(by_hash[h]) for h in missing]
        rows = await conn.fetch(
            """INSERT INTO mendline.issues
                   (service, primary_hash, title, culprit, level, level_rank, first_seen,
                    last_seen, times_seen, first_release, last_release, environments, hosts)
               SELECT s, h, t, c, l, r, f, ls, n, fr, lr,
                      ARRAY(SELECT jsonb_array_elements_text(e::jsonb)),
                      ARRAY(SELECT jsonb_array_elements_text(ho::jsonb))
               FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                           $6::smallint[], $7::timestamptz[], $8::timestamptz[], $9::bigint[],
                           $10::text[], $11::text[], $12::text[], $13::text[])
                    AS u(s, h, t, c, l, r, f, ls, n, fr, lr, e, ho)
               ON CONFLICT (primary_hash) DO NOTHING RETURNING id, primary_hash""",
            [e.service for e in firsts],
            missing,
            [e.title for e in firsts],
            [e.culprit for e in firsts],
            [LEVELS[x.level_rank] for x in d],
            [x.level_rank for x in d],
            [x.first_seen for x in d],
            [x.last_seen for x in d],
            [x.count for x in d],
            [x.first_release for x in d],
            [x.last_release for x in d],
            [x.environments_text() for x in d],
            [x.hosts_text() for x in d],
        )
        created = {row["id"] for row in rows}
        counted = {row["primary_hash"] for row in rows}
        inserted = await conn.fetch(
            """INSERT INTO mendline.fingerprints
                   (hash, issue_id, algorithm_version, basis, components, times_seen)
               SELECT h, i.id, v, b,
                      ARRAY(SELECT x FROM jsonb_array_elements_text(c::jsonb)
                                          WITH ORDINALITY AS t(x, k) ORDER BY k), n
               FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::bigint[])
                    AS u(h, v, b, c, n)
               JOIN mendline.issues i ON i.primary_hash = u.h
               ON CONFLICT (hash) DO NOTHING RETURNING hash, issue_id""",
            missing,
            [e.algorithm_version for e in firsts],
            [e.basis for e in firsts],
            [_json_array(list(e.components)) for e in firsts],
            # Counted here only with the issue this transaction made; otherwise by the update.
            [x.count if h in counted else 0 for h, x in zip(missing, d, strict=True)],
        )
        issue_of.update((row["hash"], row["issue_id"]) for row in inserted)
        raced = [h for h in missing if h not in issue_of]
        if raced:  # another consumer made them meanwhile: read what it made
            for row in await conn.fetch(
                "SELECT hash, issue_id FROM mendline.fingerprints WHERE hash = ANY($1::text[])",
                raced,
            ):
                issue_of[row["hash"]] = row["issue_id"]
        return issue_of, created

    async def _update_issues(
        self,
        conn: _Conn,
        ids: list[int],
        deltas: dict[int, _IssueDelta],
        reopened: set[int],
        escalated: dict[int, str],
    ) -> None:
        if not ids:
            return
        d = [deltas[i] for i in ids]
        await conn.execute(
            """UPDATE mendline.issues AS i SET
                   times_seen = i.times_seen + u.n,
                   first_release = CASE WHEN i.times_seen = 0 OR u.first_seen < i.first_seen
                                        THEN u.first_release ELSE i.first_release END,
                   first_seen = least(i.first_seen, u.first_seen),
                   last_release = CASE WHEN u.last_seen >= i.last_seen
                                       THEN coalesce(u.last_release, i.last_release)
                                       ELSE i.last_release END,
                   last_seen = greatest(i.last_seen, u.last_seen),
                   level = CASE WHEN u.level_rank > i.level_rank THEN u.level ELSE i.level END,
                   level_rank = greatest(i.level_rank, u.level_rank),
                   environments = (
                       SELECT coalesce(array_agg(DISTINCT x ORDER BY x), '{}')
                       FROM unnest(i.environments
                                   || ARRAY(SELECT jsonb_array_elements_text(u.envs::jsonb))) AS x
                       WHERE x <> ''),
                   hosts = (
                       SELECT coalesce(array_agg(x), '{}') FROM (
                           SELECT DISTINCT x
                           FROM unnest(
                               i.hosts || ARRAY(SELECT jsonb_array_elements_text(u.hosts::jsonb))
                           ) AS x
                           WHERE x <> '' ORDER BY x LIMIT $11) AS h),
                   status = CASE WHEN u.reopen OR u.escalate THEN 'unresolved'
                                 ELSE i.status END,
                   substatus = CASE WHEN u.reopen THEN 'regressed'
                                    WHEN u.escalate THEN 'escalating' ELSE i.substatus END,
                   regressed_at = CASE WHEN u.reopen THEN now() ELSE i.regressed_at END,
                   regressions = i.regressions + CASE WHEN u.reopen THEN 1 ELSE 0 END,
                   resolution = CASE WHEN u.reopen THEN NULL ELSE i.resolution END,
                   resolved_in_release = CASE WHEN u.reopen THEN NULL
                                              ELSE i.resolved_in_release END,
                   resolved_by = CASE WHEN u.reopen THEN NULL ELSE i.resolved_by END,
                   ignore_until = CASE WHEN u.escalate THEN NULL ELSE i.ignore_until END,
                   ignore_until_seen = CASE WHEN u.escalate THEN NULL
                                            ELSE i.ignore_until_seen END,
                   ignore_per_hour = CASE WHEN u.escalate THEN NULL ELSE i.ignore_per_hour END,
                   updated_at = now()
               FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::timestamptz[],
                           $5::text[], $6::text[], $7::smallint[], $8::text[], $9::text[],
                           $10::text[], $12::bool[], $13::bool[])
                    AS u(id, n, first_seen, last_seen, first_release, last_release, level_rank,
                         level, envs, hosts, reopen, escalate)
               WHERE i.id = u.id""",
            ids,
            [x.count for x in d],
            [x.first_seen for x in d],
            [x.last_seen for x in d],
            [x.first_release for x in d],
            [x.last_release for x in d],
            [x.level_rank for x in d],
            [LEVELS[x.level_rank] for x in d],
            [x.environments_text() for x in d],
            [x.hosts_text() for x in d],
            _MAX_HOSTS,
            [i in reopened for i in ids],
            [i in escalated for i in ids],
        )

    async def _frequency_triggers(
        self, conn: _Conn, candidates: list[int], now: datetime
    ) -> list[_Trigger]:
        """Spikes of the issues that are unresolved after the batch (an ignored issue, or
        a resolved one an old release's event did not reopen, raises none)."""
        threshold = self.settings.frequency_threshold
        minutes = self.settings.frequency_window_minutes
        if threshold <= 0:
            return []
        if not candidates:
            return []
        # Once per spike: not again while an earlier frequency trigger is inside the window.
        # The issues are locked by now, so two consumers cannot both see "none yet".
        rows = await conn.fetch(
            """SELECT c.issue_id, sum(c.count)::bigint AS n FROM mendline.issue_counts c
               WHERE c.issue_id = ANY($1::bigint[]) AND c.minute > $2
                 AND NOT EXISTS (
                     SELECT 1 FROM mendline.triggers t
                     WHERE t.issue_id = c.issue_id AND t.kind = 'frequency'
                       AND t.created_at > $4)
               GROUP BY c.issue_id HAVING sum(c.count) >= $3""",
            candidates,
            now - timedelta(minutes=minutes),
            threshold,
            now - timedelta(minutes=minutes),
        )
        return [
            (
                row["issue_id"],
                "frequency",
                f"frequency:{row['issue_id']}:{now.isoformat()}",
                f'{{"events": {row["n"]}, "minutes": {minutes}, "threshold": {threshold}}}',
            )
            for row in rows
        ]


def _lifecycle_triggers(
    ids: list[int],
    created: set[int],
    before: dict[int, Any],
    reopened: set[int],
    escalated: dict[int, str],
) -> list[_Trigger]:
    """The new-issue triggers of the issues the batch created, the regression triggers of the
    resolved ones it reopened, and the escalating triggers of the ignored ones it brought
    back; each made once per episode (resolution, ignore), whatever is replayed."""
    triggers = [(i, "new_issue", f"new_issue:{i}", "{}") for i in sorted(created)]
    for issue_id in ids:
        row = before[issue_id]
        if issue_id in reopened and issue_id not in created:
            resolved_at = row["resolved_at"].isoformat() if row["resolved_at"] else "-"
            triggers.append((issue_id, "regression", f"regression:{issue_id}:{resolved_at}", "{}"))
        elif issue_id in escalated:
            ignored_at = row["ignored_at"].isoformat() if row["ignored_at"] else "-"
            details = json.dumps({"why": escalated[issue_id]})
            triggers.append(
                (issue_id, "escalating", f"escalating:{issue_id}:{ignored_at}", details)
            )
    return triggers


_EVENT_COLUMNS = [
    "event_id",
    "issue_id",
    "received_at",
    "timestamp",
    "service",
    "environment",
    "release",
    "host",
    "level",
    "message",
    "fingerprint",
    "payload",
    "kafka_partition",
    "kafka_offset",
    "count",
    "sample_slot",
]


def _first_seen(event: PreparedEvent) -> datetime:
    """When the first occurrence an event stands for happened."""
    return event.first_timestamp or event.timestamp
