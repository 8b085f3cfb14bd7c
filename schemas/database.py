"""How a PostgreSQL failure is read: bad data (keep it aside) or an outage (wait it out)."""

from __future__ import annotations

import asyncio

import asyncpg

__all__ = ["is_bad_data", "is_outage"]

# SQLSTATE classes that blame the data: data exception, integrity constraint violation,
# program limit exceeded. Any other database error (connection, read-only standby,
# privileges, a schema from another release...) is the database's, and is waited out.
_DATA_ERRORS = {"22", "23", "54"}


def is_bad_data(exc: BaseException) -> bool:
    """True when PostgreSQL rejected the data itself, not the connection or the schema."""
    return isinstance(exc, asyncpg.PostgresError) and (exc.sqlstate or "")[:2] in _DATA_ERRORS


def is_outage(exc: BaseException) -> bool:
    """True for database failures that waiting can cure: the server, its connection, a
    timeout, a read-only standby, missing privileges; False when it rejected the data."""
    return isinstance(
        exc, asyncpg.PostgresError | asyncpg.InterfaceError | OSError | asyncio.TimeoutError
    ) and not is_bad_data(exc)
