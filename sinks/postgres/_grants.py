"""The privileges a role needs to run mendline without owning its schema: GRANT statements
for every relation in schema ``mendline``, the audit log read and append only."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncpg

__all__ = ["app_grants", "grant_statements"]

# What each table may have done to it by the app role; a table not named here: everything a
# worker does (read, add, change, remove rows), never TRUNCATE, DDL or ownership.
_LIMITED = {
    "audit_log": "SELECT, INSERT",  # append-only: no one rewrites history
    "schema_migrations": "SELECT",  # migrations are the owner's
}
_ROWS = "SELECT, INSERT, UPDATE, DELETE"

_RELATIONS = """
SELECT c.relname, c.relkind::text AS relkind FROM pg_class c
WHERE c.relnamespace = 'mendline'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
ORDER BY c.relname
"""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def grant_statements(
    role: str, relations: Iterable[tuple[str, str]], *, read_only: bool = False
) -> list[str]:
    """The statements that give ``role`` what mendline needs, for ``relations`` (name and
    ``pg_class.relkind``) of schema ``mendline``: whatever it had is revoked first, then rows
    of the tables (the audit log: read and append only; the migrations' table: read only),
    the views and sequences, and the functions (the partition functions run as the owner).
    ``read_only``: SELECT on the tables and views and nothing else (what `mendline review`
    needs, in CI)."""
    who = _ident(role)
    statements = [
        f"REVOKE ALL ON ALL TABLES IN SCHEMA mendline FROM {who};",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA mendline FROM {who};",
        f"GRANT USAGE ON SCHEMA mendline TO {who};",
    ]
    for name, kind in relations:
        what = f"mendline.{_ident(name)}"
        if read_only:
            if kind in ("r", "p", "v", "m"):
                statements.append(f"GRANT SELECT ON {what} TO {who};")
        elif kind in ("r", "p"):
            statements.append(f"GRANT {_LIMITED.get(name, _ROWS)} ON {what} TO {who};")
        elif kind in ("v", "m"):
            statements.append(f"GRANT SELECT ON {what} TO {who};")
        elif kind == "S":
            statements.append(f"GRANT USAGE, SELECT ON SEQUENCE {what} TO {who};")
    if not read_only:
        statements.append(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA mendline TO {who};")
    return statements


async def app_grants(
    conn: asyncpg.Connection[Any], role: str, *, read_only: bool = False
) -> list[str]:
    """``grant_statements`` for the relations schema ``mendline`` has now (after
    ``mendline migrate``; run them again after the next one)."""
    rows = await conn.fetch(_RELATIONS)
    relations = ((row["relname"], row["relkind"]) for row in rows)
    return grant_statements(role, relations, read_only=read_only)
