"""Alert silences in PostgreSQL: made, listed and expired by people, each change audited."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from mendline.analyzers.policy import Matcher, Silence, authorize, matcher_from_json
from mendline.schemas.errors import ConfigError, SilenceNotFound
from mendline.schemas.people import Actor
from mendline.sinks.postgres._audit import AuditedStore
from mendline.sinks.postgres._errors import translating

__all__ = ["SilenceStore", "active_silences"]

log = logging.getLogger("mendline.sinks")
#: The ids of stored silences already warned of as unreadable (once a process, not a pass).
_warned_unreadable: set[int] = set()

_COLUMNS = """id, matchers::text AS matchers, starts_at, ends_at, created_by, comment, created_at,
       expired_at, expired_by"""


@translating
class SilenceStore(AuditedStore):
    """Silences: ``add`` (silence.create), ``expire`` (silence.expire) and ``list``
    (silence.read). A change authorizes its actor, changes and writes its audit row
    (``silence:ID``) in one transaction."""

    async def add(
        self,
        actor: Actor,
        matchers: Sequence[Matcher],
        ends_at: datetime,
        comment: str,
        starts_at: datetime | None = None,
    ) -> Silence:
        """Make a silence from ``starts_at`` (now when None) to ``ends_at``; ConfigError when
        it has no matcher, no comment, or ends before it starts (or in the past)."""
        authorize(actor, "silence.create")
        if not matchers:
            raise ConfigError("a silence needs at least one matcher (--match label=value)")
        if not comment.strip():
            raise ConfigError("a silence needs a comment: say why (--comment TEXT)")
        async with self._changing() as conn:
            now = await conn.fetchval("SELECT now()")
            start = starts_at or now
            if ends_at <= max(start, now):
                raise ConfigError(f"the silence would end ({ends_at.isoformat()}) before it starts")
            row = await conn.fetchrow(
                f"""INSERT INTO mendline.silences (matchers, starts_at, ends_at, created_by,
                                                   comment)
                    VALUES ($1::jsonb, $2, $3, $4, $5) RETURNING {_COLUMNS}""",
                json.dumps([m.to_json() for m in matchers]),
                start,
                ends_at,
                actor.name,
                comment.strip()[:2000],
            )
            silence = _silence(row)
            await self._record(
                conn,
                actor,
                "silence.create",
                f"silence:{silence.id}",
                None,
                {
                    "matchers": [str(m) for m in silence.matchers],
                    "starts_at": silence.starts_at.isoformat(),
                    "ends_at": silence.ends_at.isoformat(),
                    "comment": silence.comment,
                },
            )
        return silence

    async def expire(self, actor: Actor, silence_id: int) -> bool:
        """End a silence now; whether it changed (False: it had ended or was expired
        already). SilenceNotFound when no silence has that id."""
        authorize(actor, "silence.expire")
        async with self._changing() as conn:
            row = await conn.fetchrow(
                """SELECT expired_at, ends_at, ends_at <= now() AS ended
                   FROM mendline.silences WHERE id = $1 FOR UPDATE""",
                silence_id,
            )
            if row is None:
                raise SilenceNotFound(f"no silence has id {silence_id}")
            if row["expired_at"] is not None or row["ended"]:
                return False
            await conn.execute(
                """UPDATE mendline.silences SET expired_at = now(), expired_by = $2
                   WHERE id = $1""",
                silence_id,
                actor.name,
            )
            await self._record(
                conn,
                actor,
                "silence.expire",
                f"silence:{silence_id}",
                {"expired": False, "ends_at": row["ends_at"].isoformat()},
                {"expired": True},
            )
        return True

    async def list(self, actor: Actor, *, include_ended: bool = False) -> list[Silence]:
        """The silences in effect or still to start, newest first; with ``include_ended``,
        the ended and expired ones too."""
        authorize(actor, "silence.read")
        rows = await self.pool.fetch(
            f"""SELECT {_COLUMNS} FROM mendline.silences
                WHERE $1 OR (expired_at IS NULL AND ends_at > now())
                ORDER BY id DESC""",
            include_ended,
        )
        return _readable(rows)


async def active_silences(conn: Any) -> list[Silence]:
    """The silences in effect now (``mendline.silences_active``), for the alert worker."""
    rows = await conn.fetch(
        """SELECT id, matchers::text AS matchers, starts_at, ends_at, created_by, comment,
                  created_at, NULL::timestamptz AS expired_at, NULL::text AS expired_by
           FROM mendline.silences_active"""
    )
    return _readable(rows)


def _readable(rows: Iterable[Any]) -> list[Silence]:
    """The silences of ``rows``, without those whose stored matchers no longer parse (one
    made before its regular expressions had to be RE2's): skipped, with one warning each,
    rather than stopping every alert pass."""
    silences = []
    for row in rows:
        try:
            silences.append(_silence(row))
        except ValueError as exc:
            if row["id"] not in _warned_unreadable:
                _warned_unreadable.add(row["id"])
                log.warning(
                    "silence %d is ignored: %s; expire it (`mendline silences expire %d`)"
                    " and make it again",
                    row["id"],
                    exc,
                    row["id"],
                )
    return silences


def _silence(row: Any) -> Silence:
    return Silence(
        id=row["id"],
        matchers=tuple(matcher_from_json(m) for m in json.loads(row["matchers"])),
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        created_by=row["created_by"],
        comment=row["comment"],
        created_at=row["created_at"],
        expired_at=row["expired_at"],
        expired_by=row["expired_by"],
    )
