"""The built-in rule about an attribute or item of a value the function shows can be None
(MR104)."""

from __future__ import annotations

import pytest

from tests.analyzers.review.rules_helpers import found

# -- MR104: attribute-of-none --------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        pytest.param(
            r"""
            import re

            def order_id(text):
                m = re.match(r"order-(\d+)", text)
                return m.group(1)
            """,
            [("MR104", 5)],
            id="match-through-a-name",
        ),
        pytest.param(
            r"""
            import re

            def order_id(text):
                return re.search(r"order-(\d+)", text).group(1)
            """,
            [("MR104", 4)],
            id="search-directly",
        ),
        pytest.param(
            r"""
            import re

            ORDER = re.compile(r"order-(\d+)")

            def order_id(text):
                return ORDER.search(text).group(1)
            """,
            [("MR104", 6)],
            id="module-pattern",
        ),
        pytest.param(
            r"""
            import re

            def order_id(text):
                pattern = re.compile(r"order-(\d+)")
                return pattern.match(text).group(1)
            """,
            [("MR104", 5)],
            id="local-pattern",
        ),
        pytest.param(
            r"""
            import re

            def digits(text):
                return re.fullmatch(r"\d*", text).group()
            """,
            [("MR104", 4)],
            id="fullmatch-of-a-pattern-matching-empty-text",
        ),
        pytest.param(
            """
            def name(session, user_id):
                user = session.query(User).filter_by(id=user_id).first()
                return user.name
            """,
            [("MR104", 3)],
            id="first",
        ),
        pytest.param(
            """
            def name(cur, user_id):
                cur.execute("SELECT name FROM users WHERE id = %s", (user_id,))
                return cur.fetchone()[0]
            """,
            [("MR104", 3)],
            id="fetchone-of-a-select",
        ),
        pytest.param(
            """
            def name(db, user_id):
                user = db.execute("SELECT name FROM users WHERE id = ?", (user_id,)).fetchone()
                return user["name"]
            """,
            [("MR104", 3)],
            id="sqlite-fetchone-through-a-name",
        ),
        pytest.param(
            """
            def per_day(cur):
                cur.execute("SELECT count(*) FROM orders GROUP BY day")
                return cur.fetchone()[0]
            """,
            [("MR104", 3)],
            id="fetchone-of-a-grouped-count",
        ),
        pytest.param(
            """
            def add(cur, email):
                cur.execute(
                    "INSERT INTO users (email) VALUES (%s) ON CONFLICT DO NOTHING RETURNING id",
                    (email,),
                )
                return cur.fetchone()[0]
            """,
            [("MR104", 6)],
            id="fetchone-of-an-insert-that-may-skip",
        ),
        pytest.param(
            """
            def rename(cur, user_id):
                cur.execute("UPDATE users SET name = 'x' WHERE id = %s RETURNING id", (user_id,))
                return cur.fetchone()[0]
            """,
            [("MR104", 3)],
            id="fetchone-of-an-update",
        ),
        pytest.param(
            """
            def first_name(cur):
                return cur.fetchone()[0]
            """,
            [("MR104", 2)],
            id="fetchone-of-an-unseen-query",
        ),
        pytest.param(
            """
            def name(session, stmt):
                return session.execute(stmt).scalar_one_or_none().name
            """,
            [("MR104", 2)],
            id="one-or-none",
        ),
        pytest.param(
            """
            def label(widget):
                return getattr(widget, "meta", None).label
            """,
            [("MR104", 2)],
            id="getattr-with-none",
        ),
        pytest.param(
            """
            def first_open(orders):
                return next((o for o in orders if o.open), None).id
            """,
            [("MR104", 2)],
            id="next-with-none",
        ),
        pytest.param(
            """
            def name(db, user_id):
                return db.users.find_one({"_id": user_id})["name"]
            """,
            [("MR104", 2)],
            id="find-one",
        ),
        pytest.param(
            """
            def customer(order: dict):
                return order.get("customer").name
            """,
            [("MR104", 2)],
            id="get-of-an-annotated-dict",
        ),
        pytest.param(
            """
            import os

            def home():
                return os.environ.get("HOME").rstrip("/")
            """,
            [("MR104", 4)],
            id="environment-get",
        ),
        pytest.param(
            """
            def customer(request):
                data = request.json
                return data.get("customer")["email"]
            """,
            [("MR102", 3), ("MR104", 3)],
            id="item-of-json-get-both-rules",
        ),
        pytest.param(
            r"""
            import re

            def order_id(text):
                try:
                    return re.match(r"order-(\d+)", text).group(1)
                except KeyError:
                    return None
            """,
            [("MR104", 5)],
            id="try-catching-only-keyerror",
        ),
    ],
)
def test_an_attribute_or_item_of_a_value_shown_to_be_none_is_flagged(
    code: str, expected: list[tuple[str, int]]
) -> None:
    assert found(code) == expected


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(
            r"""
            import re

            def order_id(text):
                m = re.match(r"order-(\d+)", text)
                if m:
                    return m.group(1)
                return None
            """,
            id="if-m",
        ),
        pytest.param(
            r"""
            import re

            def order_id(text):
                m = re.match(r"order-(\d+)", text)
                if m is None:
                    raise ValueError(f"not an order: {text}")
                return m.group(1)
            """,
            id="is-none-raise",
        ),
        pytest.param(
            r"""
            import re

            def order_id(text):
                m = re.match(r"order-(\d+)", text)
                if not m:
                    return None
                return m.group(1)
            """,
            id="not-m-return",
        ),
        pytest.param(
            r"""
            import re

            def order_id(text):
                m = re.search(r"order-(\d+)", text)
                assert m
                return m.group(1)
            """,
            id="assert",
        ),
        pytest.param(
            r"""
            import re

            def order_id(text):
                if (m := re.search(r"order-(\d+)", text)) is not None:
                    return m.group(1)
                return None
            """,
            id="walrus",
        ),
        pytest.param(
            r"""
            import re

            def order_id(text):
                m = re.search(r"order-(\d+)", text)
                return m and m.group(1)
            """,
            id="and",
        ),
        pytest.param(
            r"""
            import re

            def order_id(text):
                m = re.search(r"order-(\d+)", text)
                return m.group(1) if m else None
            """,
            id="conditional-expression",
        ),
        pytest.param(
            r"""
            import re

            def order_ids(lines):
                for line in lines:
                    m = re.match(r"order-(\d+)", line)
                    if not m:
                        continue
                    yield m.group(1)
            """,
            id="continue-in-a-loop",
        ),
        pytest.param(
            r"""
            import re

            def order_id(text):
                m = re.match(r"order-(\d+)", text)
                match m:
                    case None:
                        return None
                    case _:
                        return m.group(1)
            """,
            id="match-statement",
        ),
        pytest.param(
            r"""
            import re

            def order_id(text):
                try:
                    return re.match(r"order-(\d+)", text).group(1)
                except AttributeError:
                    return None
            """,
            id="try-attributeerror",
        ),
        pytest.param(
            r"""
            import re

            SPACE = re.compile(r"\s*")

            def indent(text):
                return re.match(r"\s*", text).end(), SPACE.match(text).end()
            """,
            id="pattern-matching-empty-text",
        ),
        pytest.param(
            """
            def name(session, user_id):
                user = session.query(User).filter_by(id=user_id).first()
                if user is None:
                    abort(404)
                return user.name
            """,
            id="first-checked",
        ),
        pytest.param(
            """
            def name(user_id):
                return User.query.filter_by(id=user_id).first_or_404().name
            """,
            id="first-or-404",
        ),
        pytest.param(
            """
            def name(session, stmt):
                return session.execute(stmt).scalar_one().name
            """,
            id="scalar-one",
        ),
        pytest.param(
            """
            def first_open(orders):
                return next(o for o in orders if o.open).id
            """,
            id="next-without-default",
        ),
        pytest.param(
            """
            def customer(registry):
                return registry.get("customer").name
            """,
            id="get-of-an-unknown-receiver",
        ),
        pytest.param(
            """
            def count(cur):
                cur.execute("SELECT count(*) FROM orders WHERE paid")
                return cur.fetchone()[0]
            """,
            id="count",
        ),
        pytest.param(
            """
            def count(db):
                return db.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
            """,
            id="sqlite-count-chained",
        ),
        pytest.param(
            """
            def newest(db):
                cur = db.execute("select max(id) from orders")
                return cur.fetchone()[0]
            """,
            id="max-through-a-name",
        ),
        pytest.param(
            """
            def now(cur):
                cur.execute("SELECT now(), version()")
                return cur.fetchone()[0]
            """,
            id="select-without-from",
        ),
        pytest.param(
            """
            def exists(cur, email):
                cur.execute("SELECT EXISTS (SELECT 1 FROM users WHERE email = %s)", (email,))
                return cur.fetchone()[0]
            """,
            id="exists",
        ),
        pytest.param(
            """
            def add(cur, email):
                cur.execute("INSERT INTO users (email) VALUES (%s) RETURNING id", (email,))
                return cur.fetchone()[0]
            """,
            id="insert-returning",
        ),
        pytest.param(
            """
            from sqlalchemy import text

            def count(session):
                return session.execute(text("SELECT count(*) FROM orders")).first()[0]
            """,
            id="sqlalchemy-text-count",
        ),
        pytest.param(
            """
            def count(cur):
                query = "SELECT count(*) FROM orders"
                cur.execute(query)
                return cur.fetchone()[0]
            """,
            id="count-through-a-name",
        ),
    ],
)
def test_an_attribute_of_a_value_tested_or_never_none_is_not_flagged(code: str) -> None:
    assert found(code) == []
