"""The built-in rules about definitions: a mutable default the function changes (MR111) and
recursion over JSON from outside with no depth limit (MR112)."""

from __future__ import annotations

import pytest

from tests.analyzers.review.rules_helpers import found

# -- MR111: mutable-default-argument -------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        pytest.param(
            """
            def add(item, items=[]):
                items.append(item)
                return items
            """,
            [("MR111", 1)],
            id="append",
        ),
        pytest.param(
            """
            def remember(key, value, cache={}):
                cache[key] = value
                return cache
            """,
            [("MR111", 1)],
            id="item-assignment",
        ),
        pytest.param(
            """
            def add(item, items=[]):
                items += [item]
                return items
            """,
            [("MR111", 1)],
            id="plus-equals",
        ),
        pytest.param(
            """
            def merge(extra, options={}):
                options.update(extra)
                return options
            """,
            [("MR111", 1)],
            id="update",
        ),
        pytest.param(
            """
            def walk(node, _seen=set()):
                if node in _seen:
                    return
                _seen.add(node)
                for child in node.children:
                    walk(child, _seen)
            """,
            [("MR111", 1)],
            id="seen-set",
        ),
        pytest.param(
            """
            def forget(key, cache={}):
                del cache[key]
            """,
            [("MR111", 1)],
            id="del-item",
        ),
        pytest.param(
            """
            def ordered(values=[]):
                values.sort()
                return values
            """,
            [("MR111", 1)],
            id="sort",
        ),
        pytest.param(
            """
            def add(item, *, items=[]):
                items.append(item)
            """,
            [("MR111", 1)],
            id="keyword-only",
        ),
        pytest.param(
            """
            async def add(item, items=[]):
                items.append(item)
            """,
            [("MR111", 1)],
            id="async",
        ),
        pytest.param(
            """
            from collections import defaultdict

            def group(pairs, groups=defaultdict(list)):
                for key, value in pairs:
                    groups[key].append(value)
                return groups
            """,
            [("MR111", 3)],
            id="defaultdict-item-append",
        ),
        pytest.param(
            """
            from collections import defaultdict

            def index(rows, by=defaultdict(dict)):
                for row in rows:
                    by[row.kind][row.id] = row
                return by
            """,
            [("MR111", 3)],
            id="defaultdict-nested-item-assignment",
        ),
        pytest.param(
            """
            from collections import Counter

            def tally(words, counts=Counter()):
                for word in words:
                    counts[word] += 1
                return counts
            """,
            [("MR111", 3)],
            id="counter",
        ),
        pytest.param(
            """
            from collections import deque

            def remember(event, recent=deque(maxlen=10)):
                recent.append(event)
            """,
            [("MR111", 3)],
            id="deque-with-maxlen",
        ),
        pytest.param(
            """
            class Basket:
                def __init__(self, items=[]):
                    self.items = items

                def add(self, item):
                    self.items.append(item)
            """,
            [("MR111", 2)],
            id="kept-on-self-and-changed",
        ),
    ],
)
def test_a_mutable_default_the_function_changes_is_flagged(
    code: str, expected: list[tuple[str, int]]
) -> None:
    assert found(code) == expected


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(
            """
            def total(items=[]):
                return sum(items)
            """,
            id="only-read",
        ),
        pytest.param(
            """
            def add(item, items=None):
                if items is None:
                    items = []
                items.append(item)
                return items
            """,
            id="none-default",
        ),
        pytest.param(
            """
            def add(item, items=[]):
                items = list(items)
                items.append(item)
                return items
            """,
            id="copied-first",
        ),
        pytest.param(
            """
            def add(item, items=()):
                return items + (item,)
            """,
            id="tuple",
        ),
        pytest.param(
            """
            def join(item, items=[]):
                out = []
                out.append(item)
                return out + items
            """,
            id="another-list-changed",
        ),
        pytest.param(
            """
            class Basket:
                def __init__(self, items=[]):
                    self.items = items

                def total(self):
                    return sum(self.items)
            """,
            id="kept-on-self-only-read",
        ),
        pytest.param(
            """
            class Basket:
                def __init__(self, items=[]):
                    self.items = list(items)

                def add(self, item):
                    self.items.append(item)
            """,
            id="copied-onto-self",
        ),
        pytest.param(
            """
            from collections import defaultdict

            def size(groups=defaultdict(list)):
                return len(groups)
            """,
            id="defaultdict-only-read",
        ),
        pytest.param(
            """
            from dataclasses import dataclass, field

            @dataclass
            class Basket:
                items: list = field(default_factory=list)
            """,
            id="default-factory",
        ),
        pytest.param(
            """
            def fill(rows, row=[]):
                for row in rows:
                    row.append(1)
            """,
            id="name-reused-by-a-loop",
        ),
    ],
)
def test_a_mutable_default_only_read_or_replaced_is_not_flagged(code: str) -> None:
    assert found(code) == []


def test_a_mutable_default_is_flagged_only_when_its_line_changed() -> None:
    code = """
    def add(item, items=[]):
        items.append(item)
    """
    assert found(code, changed=[2]) == []
    assert found(code, changed=[1]) == [("MR111", 1)]


# -- MR112: unbounded-recursion ------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        pytest.param(
            """
            import json

            def depth(node):
                if isinstance(node, dict):
                    return 1 + max((depth(v) for v in node.values()), default=0)
                return 0

            def view(request):
                try:
                    return depth(json.loads(request.body))
                except ValueError:
                    return 0
            """,
            [("MR112", 5)],
            id="generator-fed-request-json",
        ),
        pytest.param(
            """
            def clean(value):
                if isinstance(value, dict):
                    return {k: clean(v) for k, v in value.items()}
                if isinstance(value, list):
                    return [clean(v) for v in value]
                return value

            def view(request):
                return clean(request.json)
            """,
            [("MR112", 3), ("MR112", 5)],
            id="comprehensions-fed-request-json",
        ),
        pytest.param(
            """
            import requests

            def flatten(node):
                if isinstance(node, list):
                    return [x for child in node for x in flatten(child)]
                return [node]

            def fetch():
                return flatten(requests.get(URL, timeout=5).json())
            """,
            [("MR112", 5)],
            id="fed-another-services-json",
        ),
        pytest.param(
            """
            class Cleaner:
                def clean(self, node):
                    if isinstance(node, dict):
                        return {k: self.clean(v) for k, v in node.items()}
                    return node

                def handle(self, request):
                    return self.clean(request.json)
            """,
            [("MR112", 4)],
            id="method",
        ),
        pytest.param(
            """
            import json
            import sys

            def depth(node):
                if isinstance(node, list):
                    return 1 + max((depth(v) for v in node), default=0)
                return 0

            print(depth(json.loads(sys.stdin.read())))
            """,
            [("MR112", 6)],
            id="fed-at-module-level",
        ),
    ],
)
def test_recursion_two_frames_a_level_into_json_from_outside_is_flagged(
    code: str, expected: list[tuple[str, int]]
) -> None:
    assert found(code) == expected


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(
            """
            def count(node):
                total = 1
                if isinstance(node, list):
                    for child in node:
                        total += count(child)
                return total

            def view(request):
                return count(request.json)
            """,
            id="plain-for-loop",
        ),
        pytest.param(
            """
            def depth(node, level=0):
                if level > 100:
                    raise ValueError("nested too deep")
                if isinstance(node, dict):
                    return 1 + max((depth(v, level + 1) for v in node.values()), default=0)
                return 0

            def view(request):
                return depth(request.json)
            """,
            id="depth-parameter",
        ),
        pytest.param(
            """
            def depth(node):
                if isinstance(node, dict):
                    return 1 + max((depth(v) for v in node.values()), default=0)
                return 0

            def main(tree):
                return depth(tree)
            """,
            id="not-fed-json",
        ),
        pytest.param(
            """
            def pairs(node):
                return [x for x in pairs(node[0])] if node else []

            def view(request):
                return pairs(request.json)
            """,
            id="in-the-first-iterable",
        ),
        pytest.param(
            """
            def expand(name):
                return [name, *(x for dep in DEPENDENCIES[name] for x in expand(dep))]

            def view(request):
                return expand(request.json.get("package", "base"))
            """,
            id="into-a-fixed-table-not-the-input",
        ),
    ],
)
def test_recursion_bounded_by_the_parse_or_a_limit_or_not_into_json_is_not_flagged(
    code: str,
) -> None:
    assert found(code) == []
