"""The built-in rule about SQL built from strings (MR108)."""

from __future__ import annotations

import pytest

from tests.analyzers.review.rules_helpers import found

# -- MR108: sql-built-from-strings ---------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        pytest.param(
            """
            def find(cur, name):
                cur.execute(f"SELECT * FROM users WHERE name = '{name}'")
            """,
            [("MR108", 2)],
            id="f-string",
        ),
        pytest.param(
            """
            def find(cur, name):
                cur.execute("SELECT * FROM users WHERE name = '%s'" % name)
            """,
            [("MR108", 2)],
            id="percent",
        ),
        pytest.param(
            """
            def find(cur, name):
                cur.execute("SELECT * FROM users WHERE name = '{}'".format(name))
            """,
            [("MR108", 2)],
            id="format",
        ),
        pytest.param(
            """
            def find(cur, name):
                cur.execute("SELECT * FROM users WHERE name = '" + name + "'")
            """,
            [("MR108", 2)],
            id="plus",
        ),
        pytest.param(
            """
            def find(cur, name):
                query = f"SELECT * FROM users WHERE name = '{name}'"
                cur.execute(query)
            """,
            [("MR108", 3)],
            id="through-a-name",
        ),
        pytest.param(
            """
            def find(cur, name):
                query = "SELECT * FROM users WHERE active"
                query += " AND name = '" + name + "'"
                cur.execute(query)
            """,
            [("MR108", 4)],
            id="extended-with-plus-equals",
        ),
        pytest.param(
            """
            from sqlalchemy import text

            def find(session, name):
                return session.execute(text(f"SELECT * FROM users WHERE name = '{name}'"))
            """,
            [("MR108", 4)],
            id="sqlalchemy-text",
        ),
        pytest.param(
            """
            async def find(conn, name):
                return await conn.fetch(f"SELECT * FROM users WHERE name = '{name}'")
            """,
            [("MR108", 2)],
            id="asyncpg-fetch",
        ),
        pytest.param(
            """
            def load(cur, table, rows):
                cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)", rows)
            """,
            [("MR108", 2)],
            id="executemany-table-name",
        ),
        pytest.param(
            """
            import pandas as pd

            def frame(conn, name):
                return pd.read_sql(f"SELECT * FROM users WHERE name = '{name}'", conn)
            """,
            [("MR108", 4)],
            id="pandas-read-sql",
        ),
        pytest.param(
            """
            def find(name):
                return User.objects.raw("SELECT * FROM users WHERE name = '%s'" % name)
            """,
            [("MR108", 2)],
            id="django-raw",
        ),
        pytest.param(
            """
            def drop(cur, name):
                cur.execute(query=f"DELETE FROM users WHERE name = '{name}'")
            """,
            [("MR108", 2)],
            id="query-keyword",
        ),
        pytest.param(
            """
            def count(cur, table):
                cur.execute(f"SELECT count(*) FROM {table}")

            def report(cur, table):
                return count(cur, table)
            """,
            [("MR108", 2)],
            id="helper-given-a-variable",
        ),
    ],
)
def test_sql_built_from_a_value_that_is_not_constant_is_flagged(
    code: str, expected: list[tuple[str, int]]
) -> None:
    assert found(code) == expected


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(
            """
            def find(cur, name):
                cur.execute("SELECT * FROM users WHERE name = %s", (name,))
            """,
            id="percent-s-parameter",
        ),
        pytest.param(
            """
            def find(conn, name):
                return conn.execute("SELECT * FROM users WHERE name = ?", (name,))
            """,
            id="question-mark-parameter",
        ),
        pytest.param(
            """
            def find(cur, name):
                cur.execute("SELECT * FROM users WHERE name = %(name)s", {"name": name})
            """,
            id="named-parameter",
        ),
        pytest.param(
            """
            async def find(conn, name):
                return await conn.fetch("SELECT * FROM users WHERE name = $1", name)
            """,
            id="asyncpg-parameter",
        ),
        pytest.param(
            """
            from sqlalchemy import text

            def find(session, name):
                query = text("SELECT * FROM users WHERE name = :name")
                return session.execute(query, {"name": name})
            """,
            id="sqlalchemy-bound-parameter",
        ),
        pytest.param(
            """
            TABLE = "users"

            def find(cur, user_id):
                cur.execute(f"SELECT * FROM {TABLE} WHERE id = %s", (user_id,))
            """,
            id="constant-name",
        ),
        pytest.param(
            """
            class Repository:
                TABLE = "users"

                def find(self, cur, user_id):
                    cur.execute(f"SELECT * FROM {self.TABLE} WHERE id = %s", (user_id,))
            """,
            id="class-constant",
        ),
        pytest.param(
            """
            def open_orders(cur):
                cur.execute(f"SELECT * FROM orders WHERE status = '{Status.OPEN.value}'")
            """,
            id="enum-member-value",
        ),
        pytest.param(
            """
            def page(cur, limit: int):
                cur.execute(f"SELECT * FROM users ORDER BY id LIMIT {limit}")
            """,
            id="parameter-annotated-int",
        ),
        pytest.param(
            """
            def page(cur, limit):
                cur.execute(f"SELECT * FROM users ORDER BY id LIMIT {int(limit)}")
                cur.execute("SELECT * FROM users ORDER BY id LIMIT %d" % len(limit))
            """,
            id="numbers",
        ),
        pytest.param(
            """
            def find(cur, ids):
                marks = ", ".join(["%s"] * len(ids))
                cur.execute(f"SELECT * FROM users WHERE id IN ({marks})", ids)
            """,
            id="placeholder-list",
        ),
        pytest.param(
            """
            def find(conn, ids):
                conn.execute(f"SELECT * FROM users WHERE id IN ({','.join('?' * len(ids))})", ids)
            """,
            id="placeholder-list-inline",
        ),
        pytest.param(
            """
            def find(cur, name):
                query = "SELECT * FROM users WHERE active"
                if name:
                    query += " AND name = %s"
                cur.execute(query, (name,) if name else ())
            """,
            id="extended-with-constant-text",
        ),
        pytest.param(
            """
            def find(cur, descending):
                order = "DESC" if descending else "ASC"
                cur.execute(f"SELECT * FROM users ORDER BY id {order}")
            """,
            id="chosen-constant",
        ),
        pytest.param(
            """
            def count(cur, table):
                cur.execute(f"SELECT count(*) FROM {table}")
                return cur.fetchone()[0]

            def report(cur):
                return count(cur, "users") + count(cur, "orders")
            """,
            id="helper-always-given-constants",
        ),
        pytest.param(
            """
            from psycopg import sql

            def find(cur, table):
                cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
            """,
            id="psycopg-identifier",
        ),
        pytest.param(
            """
            def find(cur, table):
                cur.execute(f"SELECT * FROM {quote_ident(table)} WHERE id = 1")
            """,
            id="quoted-identifier",
        ),
        pytest.param(
            r"""
            import re

            def sort(cur, column):
                if not re.fullmatch(r"[a-z_]+", column):
                    raise ValueError(column)
                cur.execute(f"SELECT * FROM users ORDER BY {column}")
            """,
            id="checked-by-a-regex",
        ),
        pytest.param(
            """
            def sort(cur, column):
                if column not in ("name", "email"):
                    raise ValueError(column)
                cur.execute(f"SELECT * FROM users ORDER BY {column}")
            """,
            id="checked-against-a-fixed-tuple",
        ),
        pytest.param(
            """
            COLUMNS = frozenset({"name", "email"})

            def sort(cur, column):
                if column not in COLUMNS:
                    raise ValueError(column)
                cur.execute(f"SELECT * FROM users ORDER BY {column}")
            """,
            id="checked-against-a-constant-set",
        ),
        pytest.param(
            """
            def purge(redis, key):
                redis.execute(f"DEL {key}")
            """,
            id="not-sql",
        ),
        pytest.param(
            """
            def trace(log, table):
                log.info(f"SELECT from {table} WHERE x = 1")
            """,
            id="not-run",
        ),
    ],
)
def test_sql_with_parameters_or_constant_parts_is_not_flagged(code: str) -> None:
    assert found(code) == []
