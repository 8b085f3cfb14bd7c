"""The built-in rule about the result of a ``.get()`` without a default used in arithmetic,
an ordering or ``int()`` (MR103)."""

from __future__ import annotations

import pytest

from tests.analyzers.review.rules_helpers import found

# -- MR103: none-in-arithmetic -------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        pytest.param(
            """
            def total(line, price):
                return line.get("qty") * price
            """,
            [("MR103", 2)],
            id="multiplied",
        ),
        pytest.param(
            """
            def total(line):
                qty = line.get("qty")
                return qty + 1
            """,
            [("MR103", 3)],
            id="through-a-name",
        ),
        pytest.param(
            """
            def over(line, limit):
                return line.get("qty") > limit
            """,
            [("MR103", 2)],
            id="ordered",
        ),
        pytest.param(
            """
            def qty(line):
                return int(line.get("qty"))
            """,
            [("MR103", 2)],
            id="int",
        ),
        pytest.param(
            """
            def count(order):
                return len(order.get("items"))
            """,
            [("MR103", 2)],
            id="len",
        ),
        pytest.param(
            """
            def price(line):
                return round(line.get("price"), 2)
            """,
            [("MR103", 2)],
            id="round",
        ),
        pytest.param(
            """
            def total(lines):
                total = 0
                for line in lines:
                    total += line.get("qty")
                return total
            """,
            [("MR103", 4)],
            id="augmented-assignment",
        ),
        pytest.param(
            """
            def twice(line):
                return line.get("qty", None) * 2
            """,
            [("MR103", 2)],
            id="default-none",
        ),
        pytest.param(
            """
            def label(line):
                return "qty: " + line.get("qty")
            """,
            [("MR103", 2)],
            id="concatenated",
        ),
        pytest.param(
            """
            import os

            def workers():
                return int(os.environ.get("WORKERS"))
            """,
            [("MR103", 4)],
            id="environment",
        ),
        pytest.param(
            """
            def hits(cache):
                return int(cache.get("hits"))
            """,
            [("MR103", 2)],
            id="cache-miss",
        ),
        pytest.param(
            """
            def delay(**options):
                return options.get("timeout") * 1000
            """,
            [("MR103", 2)],
            id="keyword-arguments",
        ),
        pytest.param(
            """
            def total(line, price):
                try:
                    return line.get("qty") * price
                except ValueError:
                    return 0
            """,
            [("MR103", 3)],
            id="try-catching-only-valueerror",
        ),
    ],
)
def test_a_get_without_default_used_where_none_raises_typeerror_is_flagged(
    code: str, expected: list[tuple[str, int]]
) -> None:
    assert found(code) == expected


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(
            """
            def total(line, price):
                return line.get("qty", 0) * price
            """,
            id="default",
        ),
        pytest.param(
            """
            def total(line):
                qty = line.get("qty")
                if qty is None:
                    return 0
                return qty + 1
            """,
            id="is-none-first",
        ),
        pytest.param(
            """
            def total(line):
                qty = line.get("qty")
                if not qty:
                    return 0
                return qty + 1
            """,
            id="truth-tested-first",
        ),
        pytest.param(
            """
            def total(line):
                qty = line.get("qty")
                assert qty is not None
                return qty * 2
            """,
            id="asserted",
        ),
        pytest.param(
            """
            def total(line):
                qty = line.get("qty")
                if qty is None:
                    qty = 0
                return qty * 2
            """,
            id="replaced-when-none",
        ),
        pytest.param(
            """
            def total(line):
                return (line.get("qty") or 0) + 1
            """,
            id="or-default",
        ),
        pytest.param(
            """
            def total(line):
                if (qty := line.get("qty")) is not None:
                    return qty + 1
                return 0
            """,
            id="walrus",
        ),
        pytest.param(
            """
            def total(line):
                return line.get("qty") + 1 if line.get("qty") is not None else 0
            """,
            id="tested-in-the-expression",
        ),
        pytest.param(
            """
            def big(line):
                return bool(line.get("qty") and line.get("qty") > 3)
            """,
            id="and-guard",
        ),
        pytest.param(
            """
            def total(line):
                if "qty" in line:
                    return line.get("qty") + 1
                return 0
            """,
            id="in-test",
        ),
        pytest.param(
            """
            def total(line, price):
                try:
                    return line.get("qty") * price
                except TypeError:
                    return 0
            """,
            id="try-typeerror",
        ),
        pytest.param(
            """
            def same(line, qty):
                return line.get("qty") == qty
            """,
            id="equality",
        ),
        pytest.param(
            """
            def label(line):
                return "qty: %s" % line.get("qty")
            """,
            id="percent-format",
        ),
        pytest.param(
            """
            def count(order):
                return len(order.get("items") or [])
            """,
            id="len-of-or",
        ),
        pytest.param(
            """
            def total(lines):
                return sum(line.get("qty", 0) for line in lines) + 1
            """,
            id="sum-of-defaults",
        ),
        pytest.param(
            """
            def next_job(jobs):
                return jobs.get() + 1
            """,
            id="queue-get",
        ),
        pytest.param(
            """
            def next_job(jobs):
                return jobs.get(True) * 2, jobs.get(timeout=1) * 2
            """,
            id="queue-get-block-and-timeout",
        ),
        pytest.param(
            """
            def depth(depth_var):
                return depth_var.get() + 1
            """,
            id="context-variable",
        ),
        pytest.param(
            """
            def ordered(lines):
                return sorted(lines, key=lambda line: line.get("qty"))
            """,
            id="sort-key",
        ),
    ],
)
def test_a_get_with_a_default_or_tested_or_not_in_arithmetic_is_not_flagged(code: str) -> None:
    assert found(code) == []
