"""Alerts in PostgreSQL: triggers routed into deliveries (an outbox), claimed and marked."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from mendline.analyzers.policy import (
    NO_GROUP,
    DeliveryDecision,
    GroupState,
    RouteTiming,
    SentMessage,
    Silence,
    alert_labels,
    alert_severity,
    decide_delivery,
    follow_finding,
    higher_severity,
    resolve_audience,
    takes_digests,
)
from mendline.schemas.alert import (
    ENDS_INCIDENT,
    HEALTH_KINDS,
    Alert,
    AlertFinding,
    AlertIssue,
    AlertSeverity,
)
from mendline.sinks.postgres._alert_marks import Mark, write_marks
from mendline.sinks.postgres._alert_reads import DeliveryReads
from mendline.sinks.postgres._errors import is_bad_data, translating
from mendline.sinks.postgres._silences import active_silences

log = logging.getLogger("mendline.sinks")

if TYPE_CHECKING:
    from mendline.sinks.routing import Route, RoutingTable

__all__ = [
    "AlertStore",
    "DueDelivery",
    "RoutingResult",
    "route_key",
    "withdraw_pending",
]


@dataclass
class RoutingResult:
    """What a routing pass did."""

    triggers: int = 0
    deliveries: int = 0
    suppressed: int = 0
    unrouted: int = 0
    updates: int = 0


@dataclass(frozen=True)
class DueDelivery:
    """A claimed delivery with what its notification needs."""

    id: int
    receiver: str
    issue_id: int
    mode: str
    alert: Alert
    finding_id: int | None
    previous: dict[str, str] | None
    route_key: str
    created_at: datetime
    attempts: int


@translating
class AlertStore(DeliveryReads):
    """The alert stage's reads and writes, over a connection pool; and the dashboard's
    reads of the deliveries (DeliveryReads)."""

    def __init__(self, pool: asyncpg.Pool, link_template: str | None = None) -> None:
        self.pool = pool
        self.link_template = link_template

    # -- routing ------------------------------------------------------------------------

    async def route_pending(self, table: RoutingTable, limit: int = 200) -> RoutingResult:
        """Route triggers not routed yet into deliveries, in one transaction with marking
        them routed: each trigger reaches each receiver once, whatever crashes."""
        result = RoutingResult()
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"""{_TRIGGERS} WHERE t.routed_at IS NULL ORDER BY t.id LIMIT $1
                    FOR UPDATE OF t SKIP LOCKED""",
                limit,
            )
            tx = _Routing(conn)
            await tx.read_audiences([row["issue_id"] for row in rows])
            for row in rows:
                result.triggers += 1
                severity = alert_severity(row["level"], row["finding_severity"], row["kind"])
                await self._route(tx, table, row, severity, result, known=frozenset())
            await tx.flush()
        return result

    async def follow_findings(self, table: RoutingTable, limit: int = 200) -> RoutingResult:
        """Triggers routed before their finding arrived: update the messages already sent
        (routes that ask for updates), and route again when the finding raises the severity
        to reach receivers that were not told yet."""
        result = RoutingResult()
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"""{_TRIGGERS} WHERE t.routed_at IS NOT NULL AND t.followed_at IS NULL
                      AND t.kind IN ('new_issue', 'regression', 'health_down')
                      AND EXISTS (SELECT 1 FROM mendline.findings f WHERE f.trigger_id = t.id)
                    ORDER BY t.id LIMIT $1 FOR UPDATE OF t SKIP LOCKED""",
                limit,
            )
            tx = _Routing(conn)
            await tx.read_audiences([row["issue_id"] for row in rows])
            for row in rows:
                result.triggers += 1
                # What this batch wrote so far is about other triggers: no flush needed.
                keys, sent = await self._sent(conn, table, row["id"])
                severity = alert_severity(row["level"], row["finding_severity"], row["kind"])
                follow = follow_finding(
                    sent,
                    severity=severity,
                    routed_severity=row["routed_severity"],
                    now=row["now"],
                    kind=row["kind"],
                    resolved=row["status"] == "resolved",
                )
                if follow.later:
                    continue  # being sent right now, perhaps without the finding: next pass
                for receiver, decision in follow.updates:
                    self._insert(
                        tx, row, receiver, keys[receiver], row["routed_severity"], decision
                    )
                    result.updates += 1
                tx.changed(row["issue_id"])
                if follow.reroute:
                    await self._route(tx, table, row, severity, result, known=follow.told)
                tx.later(
                    "UPDATE mendline.triggers SET followed_at = now() WHERE id = $1", row["id"]
                )
            await tx.flush()
        return result

    async def _route(
        self,
        tx: _Routing,
        table: RoutingTable,
        row: Any,
        severity: AlertSeverity,
        result: RoutingResult,
        known: frozenset[str],
    ) -> None:
        """Route one trigger: read what the decisions need, decide for each receiver the routes
        reach (those ``known`` aside), record the deliveries and mark the trigger routed."""
        told, pending = await tx.audience(row["issue_id"])
        if row["kind"] in ENDS_INCIDENT:
            withdrawn = await self._withdraw(tx, row["issue_id"])
            pairs = [
                (route, receiver)
                for receiver in resolve_audience(told, pending, withdrawn)
                if (route := _route_of(table, receiver)) is not None
            ]
        else:
            pairs = table.route(_labels(row, severity))
        if not pairs and not known and row["kind"] not in ENDS_INCIDENT:
            result.unrouted += 1
        pairs = [(route, receiver) for route, receiver in pairs if receiver not in known]
        groups = await self._groups(tx, table, pairs, row["now"])
        for route, receiver in pairs:
            decision = decide_delivery(
                row["kind"],
                _timing(route),
                row["now"],
                told_at=told.get(receiver),
                pending=receiver in pending,
                digests=takes_digests(table.receivers.get(receiver)),
                group=groups.get(receiver, NO_GROUP),
                ignored=row["status"] == "ignored",
            )
            self._insert(tx, row, receiver, route_key(route), severity, decision)
            if decision.mode == "suppressed":
                result.suppressed += 1
            else:
                result.deliveries += 1
        tx.changed(row["issue_id"])
        tx.later(
            """UPDATE mendline.triggers SET routed_at = coalesce(routed_at, now()),
                   routed_severity = $2,
                   followed_at = CASE WHEN kind IN ('new_issue', 'regression', 'health_down')
                                      THEN followed_at ELSE now() END
               WHERE id = $1""",
            row["id"],
            severity,
        )

    async def _withdraw(self, tx: _Routing, issue_id: int) -> set[str]:
        """The issue is resolved (or its check is up again): what was not sent yet need not
        be. Suppress the messages not being sent right now; the receivers they were for."""
        await tx.flush()
        return await withdraw_pending(tx.conn, issue_id, "resolved")

    async def _groups(
        self, tx: _Routing, table: RoutingTable, pairs: list[tuple[Route, str]], now: datetime
    ) -> dict[str, GroupState]:
        """The recent past of the groups (receiver and route) of receivers that take digests:
        when each last sent, and when its message that is waiting (not being sent) is due."""
        wanted = [
            (receiver, route_key(route))
            for route, receiver in pairs
            if takes_digests(table.receivers.get(receiver))
        ]
        if not wanted:
            return {}
        rows = await tx.fetch(
            """SELECT w.receiver, g.last_sent_at,
                      (SELECT min(d.due_at) FROM mendline.deliveries d
                       WHERE d.receiver = w.receiver AND d.route_key = w.route_key
                         AND d.status = 'pending' AND d.mode = 'new'
                         AND d.lease_until IS NULL AND d.due_at > $3) AS waiting_due_at
               FROM unnest($1::text[], $2::text[]) AS w(receiver, route_key)
               LEFT JOIN mendline.alert_groups g
                 ON g.receiver = w.receiver AND g.route_key = w.route_key""",
            [r for r, _ in wanted],
            [key for _, key in wanted],
            now,
        )
        return {r["receiver"]: GroupState(r["last_sent_at"], r["waiting_due_at"]) for r in rows}

    async def _sent(
        self, conn: Any, table: RoutingTable, trigger_id: int
    ) -> tuple[dict[str, str], list[SentMessage]]:
        """A trigger's messages (updates aside) and the route key each went by."""
        rows = await conn.fetch(
            """SELECT receiver, route_key, status, finding_id,
                      coalesce(lease_until > now(), false) AS sending
               FROM mendline.deliveries
               WHERE trigger_id = $1 AND mode <> 'update'""",
            trigger_id,
        )
        keys = {r["receiver"]: r["route_key"] for r in rows}
        sent = []
        for r in rows:
            route = _route_at(table, keys[r["receiver"]])
            sent.append(
                SentMessage(
                    receiver=r["receiver"],
                    status=r["status"],
                    sending=r["sending"],
                    carried_finding=r["finding_id"] is not None,
                    send_updates=route is not None and route.send_updates,
                )
            )
        return keys, sent

    def _insert(
        self,
        tx: _Routing,
        row: Any,
        receiver: str,
        key: str,
        severity: str,
        decision: DeliveryDecision,
    ) -> None:
        # A suppressed alert is recorded as the "new" message it would have been, not sent.
        suppressed = decision.mode == "suppressed"
        details = _json(row["details"])
        if row["down_since"] is not None:  # a recovery says how long the check was down
            details.setdefault("down_since", row["down_since"].isoformat())
        tx.later(
            """INSERT INTO mendline.deliveries
                   (receiver, route_key, issue_id, trigger_id, kind, severity, mode, status,
                    due_at, wait_finding, details, reasons)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12)
               ON CONFLICT (trigger_id, receiver, mode) DO NOTHING""",
            receiver,
            key,
            row["issue_id"],
            row["id"],
            row["kind"],
            severity,
            "new" if suppressed else decision.mode,
            "suppressed" if suppressed else "pending",
            decision.due_at,
            decision.wait_finding,
            json.dumps(details),
            list(decision.reasons),
        )

    # -- sending ------------------------------------------------------------------------

    async def claim_due(
        self,
        owner: str,
        lease: float,
        limit: int = 200,
        exclude: list[str] | None = None,
        *,
        owned: list[str] | None = None,
        known: list[str] | None = None,
    ) -> list[DueDelivery]:
        """Take deliveries that are due (or whose finding arrived while they waited for it)
        for ``lease`` seconds; a killed worker's come back when the lease runs out.
        Receivers in ``exclude`` (still sending) are left for later. With ``owned``, only
        the deliveries of those receivers (the ones this worker holds; see hold_receivers)
        are taken, and those of receivers not in ``known`` (gone from the routes file).

        One statement, whatever their number; earliest due first. A claim holds at most one
        delivery per issue and receiver (the first not sent yet), so its messages may go
        out in any order: the next one about an issue is claimed once this one is marked."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                _CLAIM,
                limit,
                lease,
                owner,
                exclude or [],
                owned,
                known or [],
                sorted(HEALTH_KINDS),
            )
            out, broken = [], []
            for row in rows:
                try:
                    out.append(self._due(row))
                except Exception as exc:  # a delivery that cannot be built is kept, failed
                    broken.append((row["id"], f"cannot build the notification: {exc!r}"[:1000]))
            if broken:
                await conn.executemany(
                    """UPDATE mendline.deliveries SET status = 'failed', lease_until = NULL,
                           last_error = $2 WHERE id = $1""",
                    broken,
                )
        return out

    def _due(self, row: Any) -> DueDelivery:
        """A claimed row (see _CLAIM) as a delivery with its notification."""
        severity = row["severity"]
        finding = None
        if row["finding_id"] is not None:
            finding = AlertFinding(**{k: row[f"finding_{k}"] for k in _FINDING_FIELDS})
            # A finding may have raised it since it was routed.
            raised = alert_severity(row["issue_level"], row["finding_severity"], row["kind"])
            severity = higher_severity(severity, raised)
        issue = AlertIssue(id=row["issue_id"], **{k: row[f"issue_{k}"] for k in _ISSUE_FIELDS})
        alert = Alert(
            kind=row["kind"],
            severity=severity,
            issue=issue,
            finding=finding,
            details=_json(row["details"]),
            link=self.link_template.format(id=row["issue_id"]) if self.link_template else None,
            # A delivery's kind is its trigger's; with no trigger, no environment nor tags.
            labels=alert_labels(
                severity=severity,
                kind=row["kind"],
                service=row["issue_service"],
                environment=row["environment"],
                tags=_json(row["tags"]),
            ),
            delivery_id=row["id"],
        )
        return DueDelivery(
            id=row["id"],
            receiver=row["receiver"],
            issue_id=row["issue_id"],
            mode=row["mode"],
            alert=alert,
            finding_id=row["finding_id"],
            previous=json.loads(row["previous"]) if row["previous"] else None,
            route_key=row["route_key"],
            created_at=row["created_at"],
            attempts=row["attempts"],
        )

    async def mark(self, marks: Sequence[Mark], owner: str) -> None:
        """Record what became of claimed deliveries (see Mark), all in one transaction.
        Should the database refuse something in it (bad data), each is written on its own:
        one bad mark never costs the others theirs (a message sent and not marked would be
        sent again); those refused are logged and left to their lease."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await write_marks(conn, marks, owner)
        except asyncpg.PostgresError as exc:
            if len(marks) <= 1 or not is_bad_data(exc):
                raise
            for mark in marks:
                try:
                    async with self.pool.acquire() as conn, conn.transaction():
                        await write_marks(conn, [mark], owner)
                except asyncpg.PostgresError as refused:
                    if not is_bad_data(refused):
                        raise
                    log.warning("mendline: a delivery's outcome was refused (%s)", refused)

    async def active_silences(self) -> list[Silence]:
        """The silences in effect now."""
        async with self.pool.acquire() as conn:
            return await active_silences(conn)

    async def renew(self, ids: list[int], lease: float, owner: str) -> None:
        """Extend the lease of deliveries this owner is still sending, and of the receivers
        it holds (a slow channel does not lose its receiver to another worker meanwhile)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """UPDATE mendline.deliveries
                   SET lease_until = now() + make_interval(secs => $2)
                   WHERE id = ANY($1::bigint[]) AND owner = $3 AND status = 'pending'""",
                ids,
                lease,
                owner,
            )
            await conn.execute(_RENEW_RECEIVERS, owner, lease)

    # -- receivers: one worker sends to each --------------------------------------------

    async def hold_receivers(
        self, receivers: list[str], owner: str, lease: float, overdue: float = 0.0
    ) -> set[str]:
        """Keep for ``lease`` seconds the receivers ``owner`` holds, and take one more of
        ``receivers`` that has deliveries pending (due ``overdue`` seconds ago or more) and
        that no worker holds (or whose holder let its lease run out); the receivers ``owner``
        holds now. Only the holder sends to a receiver, so its pacing and digests are one
        worker's; taking one new receiver a pass spreads them over the workers polling side
        by side. ``overdue``: for a receiver this worker cannot send to (disabled here),
        taken only when no worker that can has sent its deliveries for that long, and given
        back as soon as none is that late."""
        rows = await self.pool.fetch(
            """WITH kept AS (
                   UPDATE mendline.receiver_leases AS l
                   SET expires_at = now() + make_interval(secs => $3)
                   WHERE owner = $2 AND receiver = ANY($1::text[])
                     AND ($4 = 0 OR EXISTS (
                           SELECT 1 FROM mendline.deliveries d
                           WHERE d.receiver = l.receiver AND d.status = 'pending'
                             AND d.due_at <= now() - make_interval(secs => $4)))
                   RETURNING receiver),
               -- Taken because it was overdue, given back once it is not: a worker that can
               -- send to it takes it at its next pass.
               given_back AS (
                   DELETE FROM mendline.receiver_leases AS l
                   WHERE $4 > 0 AND owner = $2 AND receiver = ANY($1::text[])
                     AND NOT EXISTS (
                           SELECT 1 FROM mendline.deliveries d
                           WHERE d.receiver = l.receiver AND d.status = 'pending'
                             AND d.due_at <= now() - make_interval(secs => $4))),
               free AS (
                   SELECT r FROM unnest($1::text[]) AS r
                   WHERE NOT EXISTS (
                           SELECT 1 FROM mendline.receiver_leases h
                           WHERE h.receiver = r AND (h.expires_at >= now() OR h.owner = $2))
                     AND EXISTS (
                           SELECT 1 FROM mendline.deliveries d
                           WHERE d.receiver = r AND d.status = 'pending'
                             AND ($4 = 0 OR d.due_at <= now() - make_interval(secs => $4)))
                   ORDER BY random() LIMIT 1),
               taken AS (
                   INSERT INTO mendline.receiver_leases AS l (receiver, owner, expires_at)
                   SELECT r, $2, now() + make_interval(secs => $3) FROM free
                   ON CONFLICT (receiver) DO UPDATE
                       SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
                       WHERE l.expires_at < now()
                   RETURNING receiver)
               SELECT receiver FROM kept UNION SELECT receiver FROM taken""",
            receivers,
            owner,
            lease,
            overdue,
        )
        return {r["receiver"] for r in rows}

    async def let_go_receivers(self, owner: str, after: float) -> None:
        """A stopping worker hands its receivers over: another may take them ``after``
        seconds from now (its last message's pacing interval), not when the lease ran out."""
        await self.pool.execute(
            """UPDATE mendline.receiver_leases
               SET expires_at = least(expires_at, now() + make_interval(secs => $2))
               WHERE owner = $1""",
            owner,
            after,
        )

    async def release(self, items: list[DueDelivery], owner: str) -> None:
        """Give back claimed deliveries not sent (a clean stop); the attempt is not counted."""
        await self.pool.execute(
            """UPDATE mendline.deliveries SET lease_until = NULL,
                   attempts = greatest(attempts - 1, 0)
               WHERE id = ANY($1::bigint[]) AND owner = $2 AND status = 'pending'""",
            [i.id for i in items],
            owner,
        )


class _Routing:
    """One routing transaction: the receivers told of and waiting for a message about each
    issue, read for the whole batch at once; and its writes, held until a read needs them
    or the batch ends. A batch of triggers costs a few statements rather than several each,
    and reads as it would if each write had gone at once."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._writes: dict[str, list[tuple[Any, ...]]] = {}
        self._audiences: dict[int, tuple[dict[str, datetime], set[str]]] = {}

    async def read_audiences(self, issue_ids: list[int]) -> None:
        """Read the audiences of these issues (see audience) now."""
        await self.flush()
        rows = await self.conn.fetch(_AUDIENCES, sorted(set(issue_ids)), sorted(ENDS_INCIDENT))
        for issue_id in issue_ids:
            self._audiences[issue_id] = ({}, set())
        for r in rows:
            told, pending = self._audiences[r["issue_id"]]
            if r["pending"]:
                pending.add(r["receiver"])
            else:
                told[r["receiver"]] = r["last_sent_at"]

    async def audience(self, issue_id: int) -> tuple[dict[str, datetime], set[str]]:
        """The receivers told of the issue, with when they were last sent a message about
        it; and those with a message about it not sent yet (a resolve aside)."""
        if issue_id not in self._audiences:
            await self.read_audiences([issue_id])
        return self._audiences[issue_id]

    def changed(self, issue_id: int) -> None:
        """The issue's deliveries were written: its audience is read again when asked."""
        self._audiences.pop(issue_id, None)

    def later(self, statement: str, *args: Any) -> None:
        """Run ``statement`` with ``args`` before the next read, or at the end."""
        self._writes.setdefault(statement, []).append(args)

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        """The rows of ``query``, after the writes held."""
        await self.flush()
        return list(await self.conn.fetch(query, *args))

    async def flush(self) -> None:
        """Run the writes held, in order for each statement."""
        writes, self._writes = self._writes, {}
        for statement, args in writes.items():
            await self.conn.executemany(statement, args)


def route_key(route: Route) -> str:
    """A route's identity across edits of the file that move its line: what it matches and
    where it sends (two routes alike in both are one group anyway)."""
    shape = (
        sorted((k, sorted(v)) for k, v in route.match.items()),
        sorted((k, p.pattern) for k, p in route.match_re.items()),
        list(route.receivers),
    )
    return hashlib.sha1(repr(shape).encode(), usedforsecurity=False).hexdigest()[:16]


def _route_at(table: RoutingTable, key: str) -> Route | None:
    return next((r for r in table.routes if route_key(r) == key), None)


def _route_of(table: RoutingTable, receiver: str) -> Route | None:
    return next((r for r in table.routes if receiver in r.receivers), None)


def _timing(route: Route) -> RouteTiming:
    return RouteTiming(
        group_wait=route.group_wait,
        group_interval=route.group_interval,
        repeat_interval=route.repeat_interval,
        send_updates=route.send_updates,
    )


def _labels(row: Any, severity: AlertSeverity) -> dict[str, str]:
    return alert_labels(
        severity=severity,
        kind=row["kind"],
        service=row["service"],
        environment=row["environment"],
        tags=_json(row["tags"]),
    )


def _json(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    parsed = json.loads(value) if isinstance(value, str | bytes) else value
    return parsed if isinstance(parsed, dict) else {}


# A trigger carries its event's environment and tags (written by the consumer with it); only
# one from before that (environment NULL) looks at its issue's newest event: the one-time
# filter on t.environment keeps the events unread for the others. With trigger t.
_NEWEST_EVENT = """LEFT JOIN LATERAL (
    SELECT e.environment, (e.payload -> 'tags')::text AS tags FROM mendline.events e
    WHERE t.environment IS NULL AND e.issue_id = t.issue_id
    ORDER BY e.received_at DESC LIMIT 1) e ON true"""
_LABELS = """coalesce(t.environment, e.environment) AS environment,
       coalesce(t.tags::text, e.tags) AS tags"""

# A check's recovery reads when its check went down: the trigger that said so.
_TRIGGERS = f"""SELECT t.id, t.issue_id, t.kind, t.details::text AS details, t.routed_severity,
       now() AS now, i.service, i.level, i.status,
       (SELECT f.severity FROM mendline.findings f WHERE f.issue_id = t.issue_id
        ORDER BY f.id DESC LIMIT 1) AS finding_severity,
       {_LABELS},
       (SELECT d.created_at FROM mendline.triggers d
        WHERE t.kind = 'health_recovered' AND d.issue_id = t.issue_id
          AND d.kind = 'health_down' AND d.id < t.id
        ORDER BY d.id DESC LIMIT 1) AS down_since
FROM mendline.triggers t
JOIN mendline.issues i ON i.id = t.issue_id
{_NEWEST_EVENT}"""

_AUDIENCES = """SELECT issue_id, receiver, last_sent_at, false AS pending
FROM mendline.alert_state WHERE issue_id = ANY($1::bigint[])
UNION ALL
SELECT DISTINCT issue_id, receiver, NULL::timestamptz, true FROM mendline.deliveries
WHERE issue_id = ANY($1::bigint[]) AND status = 'pending' AND kind <> ALL($2::text[])"""

_RENEW_RECEIVERS = """UPDATE mendline.receiver_leases
SET expires_at = now() + make_interval(secs => $2)
WHERE owner = $1 AND expires_at >= now()"""

_ISSUE_FIELDS = (
    "service",
    "title",
    "culprit",
    "level",
    "status",
    "times_seen",
    "first_seen",
    "last_seen",
    "first_release",
    "last_release",
    "environments",
)
_FINDING_FIELDS = (
    "root_cause",
    "suggested_fix",
    "category",
    "severity",
    "confidence",
    "analyser",
    "model",
    "risks",
)

# The deliveries due (see claim_due), leased, and in the same statement what their
# notifications need: the issue (issue_*), the finding (finding_*), the reference of the
# first message (previous), the labels' environment and tags (their trigger's, as routing
# read them). A check's alert shows its own trigger's finding only: an earlier outage's
# cause (or none, for a recovery) is not this one's; other alerts the issue's newest,
# their trigger's first.
_CLAIM = f"""WITH due AS (
    SELECT d.id, d.receiver, d.route_key, d.due_at FROM mendline.deliveries d
    WHERE d.status = 'pending' AND d.receiver <> ALL($4::text[])
      AND ($5::text[] IS NULL OR d.receiver = ANY($5::text[]) OR d.receiver <> ALL($6::text[]))
      AND (d.lease_until IS NULL OR d.lease_until < now())
      -- In order per issue and receiver: an update never overtakes its message, a resolve
      -- never overtakes the alert it resolves. So a claim holds one delivery at most per
      -- issue and receiver, and its messages may be sent in any order.
      AND NOT EXISTS (
          SELECT 1 FROM mendline.deliveries p
          WHERE p.issue_id = d.issue_id AND p.receiver = d.receiver
            AND p.status = 'pending' AND p.id < d.id)
      -- Early when its finding is in and so are those of the alerts it will share a digest
      -- with: one late finding holds the group (to the end of group_wait at most), so that
      -- no member goes out without its root cause for want of waiting a moment.
      AND (d.due_at <= now()
           OR (d.wait_finding
               AND EXISTS (SELECT 1 FROM mendline.findings f WHERE f.trigger_id = d.trigger_id)
               AND NOT EXISTS (
                   SELECT 1 FROM mendline.deliveries m
                   WHERE m.receiver = d.receiver AND m.route_key = d.route_key
                     AND m.due_at = d.due_at AND m.mode = 'new'
                     AND m.status = 'pending' AND m.wait_finding
                     AND NOT EXISTS (
                         SELECT 1 FROM mendline.findings f WHERE f.trigger_id = m.trigger_id))))
    ORDER BY d.due_at, d.id LIMIT $1 FOR UPDATE SKIP LOCKED),
-- A message sent early takes its group along: the alerts that share its route, receiver and
-- time go in the same digest.
mates AS (
    SELECT m.id FROM mendline.deliveries m
    JOIN (SELECT DISTINCT receiver, route_key, due_at FROM due) g
      ON m.receiver = g.receiver AND m.route_key = g.route_key AND m.due_at = g.due_at
    WHERE m.mode = 'new' AND m.status = 'pending'
      AND (m.lease_until IS NULL OR m.lease_until < now())
      AND NOT EXISTS (
          SELECT 1 FROM mendline.deliveries p
          WHERE p.issue_id = m.issue_id AND p.receiver = m.receiver
            AND p.status = 'pending' AND p.id < m.id)
    FOR UPDATE OF m SKIP LOCKED),
chosen AS (SELECT id FROM due UNION SELECT id FROM mates),
claimed AS (
    UPDATE mendline.deliveries d
    SET lease_until = now() + make_interval(secs => $2), owner = $3, attempts = d.attempts + 1
    FROM chosen WHERE d.id = chosen.id
    RETURNING d.id, d.receiver, d.issue_id, d.trigger_id, d.kind, d.severity, d.mode,
              d.details, d.route_key, d.due_at, d.created_at, d.attempts)
SELECT c.id, c.receiver, c.issue_id, c.kind, c.severity, c.mode, c.details::text AS details,
       c.route_key, c.created_at, c.attempts,
       i.service AS issue_service, i.title AS issue_title, i.culprit AS issue_culprit,
       i.level AS issue_level, i.status AS issue_status, i.times_seen AS issue_times_seen,
       i.first_seen AS issue_first_seen, i.last_seen AS issue_last_seen,
       i.first_release AS issue_first_release, i.last_release AS issue_last_release,
       i.environments AS issue_environments,
       f.id AS finding_id, f.root_cause AS finding_root_cause,
       f.suggested_fix AS finding_suggested_fix, f.category AS finding_category,
       f.severity AS finding_severity, f.confidence AS finding_confidence,
       f.analyser AS finding_analyser, f.model AS finding_model, f.risks AS finding_risks,
       s.reference::text AS previous, {_LABELS}
FROM claimed c
JOIN mendline.issues i ON i.id = c.issue_id
LEFT JOIN LATERAL (
    SELECT f.* FROM mendline.findings f
    WHERE f.issue_id = c.issue_id
      AND (c.kind <> ALL($7::text[]) OR f.trigger_id IS NOT DISTINCT FROM c.trigger_id)
    ORDER BY f.trigger_id IS NOT DISTINCT FROM c.trigger_id DESC, f.id DESC LIMIT 1) f ON true
LEFT JOIN mendline.alert_state s ON s.issue_id = c.issue_id AND s.receiver = c.receiver
LEFT JOIN mendline.triggers t ON t.id = c.trigger_id
{_NEWEST_EVENT}
ORDER BY c.due_at, c.id"""


async def withdraw_pending(conn: Any, issue_id: int, became: str) -> set[str]:
    """Suppress the messages about an issue that were waiting to be sent (not those being
    sent right now, nor the end of an incident), because it ``became`` resolved or ignored;
    the receivers they were for. In the caller's transaction."""
    rows = await conn.fetch(
        """UPDATE mendline.deliveries SET status = 'suppressed',
               last_error = $3 || ' before it was sent',
               reasons = array_append(reasons,
                                      'withdrawn: the issue was ' || $3 || ' before it was sent')
           WHERE issue_id = $1 AND status = 'pending' AND kind <> ALL($2::text[])
             AND (lease_until IS NULL OR lease_until < now())
           RETURNING receiver""",
        issue_id,
        sorted(ENDS_INCIDENT),
        became,
    )
    return {r["receiver"] for r in rows}
