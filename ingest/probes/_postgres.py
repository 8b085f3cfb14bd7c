"""The postgres probe: connect with the URL from the environment and run the check's query,
both within the check's timeout."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import asyncpg

from mendline.analyzers.health.conditions import ROWS_LIMIT
from mendline.ingest.probes._run import ProbeFailed, Seen, env_value, network_failure
from mendline.schemas.checks import PostgresCheck
from mendline.schemas.redaction import url_secrets

__all__ = ["postgres_secrets", "probe_postgres"]

_CLOSE_TIMEOUT = 2.0


def postgres_secrets(check: PostgresCheck, environ: Mapping[str, str]) -> list[str]:
    """The URL's secrets (its password, as written and decoded), to keep them out of sight."""
    dsn = environ.get(check.dsn_env)
    return [] if dsn is None else url_secrets(dsn)


async def _connect(check: PostgresCheck, dsn: str, seen: Seen) -> Any:
    started = time.perf_counter()
    where = f"the PostgreSQL server of {check.dsn_env}"
    try:
        conn = await asyncpg.connect(dsn, timeout=check.timeout)
    except (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidPasswordError) as exc:
        raise ProbeFailed("auth", f"{where} refused the credentials: {exc}") from exc
    except asyncpg.PostgresError as exc:
        raise ProbeFailed("other", f"{where} refused the connection: {exc}") from exc
    except (asyncpg.ClientConfigurationError, ValueError) as exc:
        # the driver's message may quote the URL: observe() filters its secrets
        raise ProbeFailed("config", f"{check.dsn_env} is not a PostgreSQL URL ({exc})") from exc
    except (OSError, TimeoutError) as exc:
        raise network_failure(exc, where) from exc
    seen.timings["connect"] = time.perf_counter() - started
    seen.values["CONNECTED"] = True
    return conn


async def _close(conn: Any) -> None:
    try:
        await conn.close(timeout=_CLOSE_TIMEOUT)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        conn.terminate()
    except BaseException:
        conn.terminate()
        raise


async def _returns_rows(conn: Any, statement: Any, timeout: float) -> bool:
    """Whether the prepared statement returns rows, as the server described it: a query of
    no columns (``SELECT FROM t``) returns rows too, a command (UPDATE, SET, VACUUM) none.
    asyncpg shows both as no attributes, so the server's view of the statement tells them
    apart: its result types are empty for such a query and NULL for a command."""
    if statement.get_attributes():
        return True
    try:
        types = await conn.fetchrow(
            "SELECT result_types FROM pg_prepared_statements WHERE name = $1",
            statement.get_name(),
            timeout=timeout,
        )
    except asyncpg.UndefinedColumnError:  # PostgreSQL 13 and older: taken for a command
        return False
    return types is not None and types[0] is not None


async def _run(conn: Any, check: PostgresCheck) -> tuple[int, Any]:
    """The query's row count (at most ROWS_LIMIT + 1) and its first row (None without rows),
    with no more than that one row sent over: the others are counted where they are."""
    statement = await conn.prepare(check.query, timeout=check.timeout)
    if not await _returns_rows(conn, statement, check.timeout):  # run it as it is
        await statement.fetch(timeout=check.timeout)
        return 0, None
    async with conn.transaction():  # a cursor lives in a transaction
        cursor = await statement.cursor(timeout=check.timeout)
        first = await cursor.fetchrow(timeout=check.timeout)
        if first is None:
            return 0, None
        return 1 + await cursor.forward(ROWS_LIMIT, timeout=check.timeout), first


async def probe_postgres(check: PostgresCheck, environ: Mapping[str, str], seen: Seen) -> None:
    """Connect and run the query: CONNECTED, QUERY_DURATION (ms), ROWS (the rows returned,
    counted up to ROWS_LIMIT: more are ROWS_LIMIT + 1), RESULT (the first column of the
    first row as text, or None), RESPONSE_TIME (connect and query, ms). Only the first row
    is fetched, whatever the query returns."""
    dsn = env_value(environ, check.dsn_env, "the PostgreSQL URL")
    seen.values["CONNECTED"] = False
    conn = await _connect(check, dsn, seen)
    try:
        started = time.perf_counter()
        try:
            rows, first_row = await _run(conn, check)
        except asyncpg.PostgresError as exc:
            raise ProbeFailed("query", f"the query failed: {exc}") from exc
        except (asyncpg.InterfaceError, OSError) as exc:
            raise network_failure(exc, "the PostgreSQL server") from exc
        seen.timings["query"] = time.perf_counter() - started
    except BaseException:
        conn.terminate()
        raise
    await _close(conn)
    seen.values["QUERY_DURATION"] = seen.timings["query"] * 1000.0
    seen.values["ROWS"] = rows
    first = first_row[0] if first_row is not None and len(first_row) else None
    seen.values["RESULT"] = None if first is None else str(first)
    seen.values["RESPONSE_TIME"] = (seen.timings["connect"] + seen.timings["query"]) * 1000.0
