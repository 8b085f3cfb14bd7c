"""Changed lines placed in their functions, named as the frames of real tracebacks name
them (co_qualname), so that production issues find the functions a diff changes."""

from __future__ import annotations

import ast
import sys
import traceback

import pytest

from mendline.analyzers.review._functions import MODULE, changed_functions

SOURCE = """import json


@decorated
def handler(request):
    def parse(raw):
        return json.loads(raw)["x"]
    return parse(request)


class Orders:
    limit = 10

    async def create(self, body):
        return body["n"] / 0

    class Line:
        def price(self):
            raise KeyError("price")
"""


@pytest.mark.parametrize(
    ("line", "qualname"),
    [
        (1, MODULE),
        (4, "handler"),  # a decorator belongs to its function
        (7, "handler.<locals>.parse"),
        (8, "handler"),
        (12, "Orders"),
        (15, "Orders.create"),
        (19, "Orders.Line.price"),
    ],
)
def test_each_line_in_its_innermost_scope(line: int, qualname: str) -> None:
    tree = ast.parse(SOURCE)
    (found,) = changed_functions("app.py", tree, frozenset({line}), len(SOURCE.splitlines()))
    assert (found.qualname, found.changed) == (qualname, (line,))
    assert found.first <= line <= found.last


def test_lines_of_one_function_are_grouped_in_order() -> None:
    tree = ast.parse(SOURCE)
    found = changed_functions("app.py", tree, frozenset({15, 14, 7, 1}), 19)
    assert [(f.qualname, f.changed) for f in found] == [
        (MODULE, (1,)),
        ("handler.<locals>.parse", (7,)),
        ("Orders.create", (14, 15)),
    ]


def test_qualnames_are_what_python_puts_in_frames() -> None:
    """The names match the co_qualname of the code objects of a real traceback."""
    namespace: dict[str, object] = {"decorated": lambda f: f}
    exec(compile(SOURCE, "app.py", "exec"), namespace)
    orders = namespace["Orders"]
    try:
        orders.Line().price()  # type: ignore[attr-defined]
    except KeyError:
        frame = traceback.extract_tb(sys.exc_info()[2])[-1]
    (found,) = changed_functions("app.py", ast.parse(SOURCE), frozenset({frame.lineno or 0}), 19)
    code = orders.Line.price.__code__  # type: ignore[attr-defined]
    assert found.qualname == code.co_qualname == "Orders.Line.price"
