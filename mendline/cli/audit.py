"""The ``mendline audit`` commands: list the audit trail's rows, and walk its hash chain to
the first row that was altered or removed."""

from __future__ import annotations

import argparse
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from mendline.cli._options import AS_JSON, MAX_DAYS, Commands, positive
from mendline.cli.output import print_json, printable, shorten, table
from mendline.schemas.duration import time_or_ago
from mendline.schemas.settings import Settings

if TYPE_CHECKING:
    from mendline.analyzers.audit import ChainCheck
    from mendline.schemas.people import StoredAuditEntry
    from mendline.sinks.postgres import AuditStore

__all__ = ["register", "when"]

_T = TypeVar("_T")


def register(commands: Commands) -> None:
    """Add ``audit list`` and ``audit verify`` to the top-level ``commands``."""
    audit = commands.add_parser("audit", help="list the audit trail; verify its hash chain")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)

    listing = audit_commands.add_parser(
        "list", parents=[AS_JSON], help="the audit trail's rows, newest first"
    )
    listing.add_argument("--actor", metavar="NAME", help="only this actor's rows")
    listing.add_argument(
        "--action", metavar="PREFIX", help="only actions starting with it (issue. or issue.resolve)"
    )
    listing.add_argument("--target", metavar="T", help="only rows on this target (issue:12)")
    listing.add_argument(
        "--since", type=when, metavar="ISO|DURATION", help="from this time, or this long ago (2h)"
    )
    listing.add_argument(
        "--until", type=when, metavar="ISO|DURATION", help="before this time, or this long ago"
    )
    listing.add_argument(
        "--before", type=positive, metavar="ID", help="the rows before this id (the next page)"
    )
    listing.add_argument(
        "--limit", type=positive, default=50, metavar="N", help="at most N rows (default 50)"
    )
    listing.set_defaults(run=_audit_list)

    verify = audit_commands.add_parser(
        "verify",
        parents=[AS_JSON],
        help="walk the hash chain; exit 1 naming the first row altered or removed",
    )
    verify.add_argument(
        "--expect",
        type=_row_hash,
        metavar="HASH",
        help="a row_hash kept outside the database (an earlier verify's last hash): exit 1"
        " unless the intact chain still holds it",
    )
    verify.set_defaults(run=_audit_verify)


def _row_hash(text: str) -> str:
    if re.fullmatch(r"[0-9a-fA-F]{64}", text) is None:
        raise argparse.ArgumentTypeError("expected a row hash: 64 hexadecimal digits")
    return text.lower()


def when(text: str) -> datetime:
    """A time (an argparse ``type``): ISO 8601 (UTC when it names no zone), or a duration
    (``2h``, ``7d``) before now, of at most :data:`MAX_DAYS` days."""
    try:
        return time_or_ago(text, datetime.now(UTC), MAX_DAYS)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


async def _reading(settings: Settings, work: Callable[[AuditStore], Awaitable[_T]]) -> _T:
    """``work(store)`` once the actor the settings say may read the audit trail."""
    import asyncpg

    from mendline.analyzers.policy.people import authorize
    from mendline.cli._actor import audit_writer, cli_origin, resolve_actor
    from mendline.cli._connections import connect_database
    from mendline.sinks.postgres import AuditStore, PeopleStore

    conn = await connect_database(settings)  # a clear error when unreachable or not migrated
    await conn.close()
    pool = await asyncpg.create_pool(settings.database_url.get_secret_value())
    store = AuditStore(pool)
    try:
        people = PeopleStore(pool, audit_writer(), cli_origin())
        authorize(await resolve_actor(settings, people), "audit.read")
        return await work(store)
    finally:
        await store.close()


def _audit_list(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    async def fetch(store: AuditStore) -> list[StoredAuditEntry]:
        return await store.list(
            actor=args.actor,
            action=args.action,
            target=args.target,
            since=args.since,
            until=args.until,
            before_id=args.before,
            limit=args.limit,
        )

    rows = asyncio.run(_reading(settings, fetch))
    if args.json:
        for row in rows:
            print_json(row.model_dump(mode="json"))
        return 0
    if not rows:
        print("no audit rows")
        return 0
    header = ("ID", "AT", "ACTOR", "ROLE", "ACTION", "TARGET", "ORIGIN")
    print(
        table(
            header,
            (
                (
                    row.id,
                    row.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                    shorten(row.actor.name, 30),
                    row.actor.role,
                    shorten(row.action, 30),
                    shorten(row.target, 40),
                    shorten(row.origin, 40),
                )
                for row in rows
            ),
        )
    )
    return 0


def _audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    async def walk(store: AuditStore) -> ChainCheck:
        return await store.verify(args.expect)

    check = asyncio.run(_reading(settings, walk))
    if args.json:
        print_json({**check.as_json(), "message": printable(check.describe())})
    else:
        print(shorten(check.describe(), 500))
    return 0 if check.holds else 1
