"""A fresh database for a test, on the session's PostgreSQL server, reading it back, the
audited actions on its issues as a person on call would take them, and findings with patches
as an analyser would store them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from pydantic_core import to_json

from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.ingest import prepare_record
from mendline.schemas.event import LEVELS
from mendline.schemas.finding import Finding
from mendline.schemas.people import Actor
from mendline.schemas.prepared import PreparedEvent
from mendline.schemas.settings import load_settings
from mendline.sinks.postgres import (
    IssueActions,
    append_audit,
    available_migrations,
    connect_findings,
    connect_store,
    migrate,
)
from tests.integration.event_factory import encode, make_event

#: Someone on call, who may resolve, ignore and merge issues and mark findings.
RESPONDER = Actor(name="rita", role="responder", auth="local")


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@asynccontextmanager
async def fresh_database(server_url: str, *, template: str | None = None) -> AsyncIterator[str]:
    """Create a database, empty or a copy of the database ``template``, yield its URL, drop
    it afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    copy_of = f' TEMPLATE "{template}"' if template else ""
    admin = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"{copy_of}')
        yield with_database(server_url, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def create_migrated_template(server_url: str) -> str:
    """A new database with every migration applied, to copy for each test that wants one
    (a copy takes a fraction of applying the migrations again); returns its name."""
    name = f"template_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(with_database(server_url, name))
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return name


async def drop_database(server_url: str, name: str) -> None:
    """Drop the database ``name`` on ``server_url``, if it is there."""
    admin = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def repeatable_read_pool(url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool whose sessions default to repeatable read, as a server configured so would:
    what a change that needs read committed must ask for itself."""
    pool = await asyncpg.create_pool(
        url,
        min_size=1,
        max_size=2,
        server_settings={"default_transaction_isolation": "repeatable read"},
    )
    try:
        yield pool
    finally:
        await pool.close()


async def query(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    """The rows of ``sql`` with ``args``, on a connection of its own."""
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def behind_audit_trigger(url: str, statement: str, *args: object) -> None:
    """``statement`` run with the audit log's append-only trigger disabled, as a superuser
    could: how the tests alter and remove audit rows that ``audit verify`` must catch."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute("ALTER TABLE mendline.audit_log DISABLE TRIGGER USER")
            await conn.execute(statement, *args)
            await conn.execute("ALTER TABLE mendline.audit_log ENABLE TRIGGER USER")
    finally:
        await conn.close()


@asynccontextmanager
async def issue_actions(url: str) -> AsyncIterator[IssueActions]:
    """The audited actions on the issues, findings and events of ``url`` (their rows written
    to its real audit trail, from origin ``test``), on a pool of their own."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        yield IssueActions(pool, append_audit, origin="test")
    finally:
        await pool.close()


def patch_finding(patch: str | None, **fields: Any) -> Finding:
    """A medium bad-input finding by the heuristic analyser (the quantity is not a number)
    carrying ``patch``, with ``fields`` over it."""
    finding = Finding(
        analyser="heuristic",
        root_cause="the quantity is not a number",
        confidence=0.8,
        category="bad_input",
        severity="medium",
        suggested_fix="default it to 0",
        fix_patch=patch,
    )
    return finding.model_copy(update=fields)


async def finding_of_new_issue(url: str, issue: int, patch: str | None, **fields: Any) -> int:
    """A ``patch_finding`` of a new issue (``issue`` numbers its call site: one event of it
    is stored); the finding's id."""
    settings = load_settings(database_url=url, frequency_threshold=0)
    prepared = prepare_record(encode(make_event(issue)), Scrubber())
    events = await connect_store(settings)
    try:
        await events.write([prepared])
        issue_id = await events.pool.fetchval(
            "SELECT issue_id FROM mendline.fingerprints WHERE hash = $1", prepared.fingerprint
        )
    finally:
        await events.close()
    findings = await connect_findings(settings, 1)
    try:
        return await findings.save(
            patch_finding(patch, **fields), issue_id=int(issue_id), cache_key=f"issue {issue}"
        )
    finally:
        await findings.pool.close()


async def store_events(url: str, *batches: list[dict[str, Any]]) -> None:
    """Store each batch of ErrorEvent documents the consumer's way (validated, scrubbed,
    fingerprinted, one transaction a batch), in order: issues get their ids in that order."""
    store = await connect_store(load_settings(database_url=url, frequency_threshold=0))
    try:
        for batch in batches:
            await store.write([prepare_record(encode(e), Scrubber()) for e in batch])
    finally:
        await store.close()


#: When prepared_event's events happen unless told.
EVENT_AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def prepared_event(
    fingerprint: str = "f" * 32,
    *,
    at: datetime = EVENT_AT,
    level: str = "error",
    release: str | None = "1.0",
    environment: str = "production",
    host: str | None = "web-1",
    service: str = "api",
) -> PreparedEvent:
    """An event as the consumer hands it to the store: validated, scrubbed, fingerprinted."""
    event_id = uuid.uuid4().hex
    return PreparedEvent(
        event_id=event_id,
        timestamp=at,
        service=service,
        environment=environment,
        release=release,
        host=host,
        level=level,
        level_rank=LEVELS.index(level),  # type: ignore[arg-type]
        message="order_failed",
        fingerprint=fingerprint,
        algorithm_version=1,
        basis="stacktrace",
        components=("ValueError", "app.orders.parse"),
        title="ValueError: bad quantity",
        culprit="app.orders.parse",
        payload=to_json({"event_id": event_id, "message": "order_failed"}),
    )


async def migrate_before(conn: asyncpg.Connection, version: str) -> None:
    """Apply the migrations before ``version`` (and record them), as an older mendline left
    the database: what an upgrade test starts from."""
    await conn.execute(
        """CREATE SCHEMA mendline;
           CREATE TABLE mendline.schema_migrations (
               version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    for shipped, sql in available_migrations():
        if shipped < version:
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO mendline.schema_migrations (version) VALUES ($1)", shipped
            )
