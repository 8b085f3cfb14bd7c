"""The built-in rules as a whole: what a comment carries, only changed lines reported (the
function around them read for context), the inline suppression comment, rules left out in
tests and benchmarks, and code that is odd, huge or deeply nested."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from mendline.analyzers.review import BUILTIN_RULES, is_suppressed, review_files, source_lines
from mendline.schemas.review import ChangedFile
from tests.analyzers.review.rules_helpers import PATH, comments, found, snippet

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

#: A module in which every built-in rule fires once, on the line EVERY_RULE_LINES says.
EVERY_RULE = snippet(
    r"""
    import os
    import re
    import time
    from datetime import UTC, datetime

    import requests


    def view(request, cur, items=[]):
        items.append(request)
        qty = int(request.GET.get("qty", "1"))
        name = request.GET["name"]
        extra = request.GET.get("extra") * 2
        code = re.match(r"\d+", name).group()
        try:
            requests.get(URL)
        except:
            pass
        try:
            log(qty, extra, code)
        except Exception:
            pass
        cur.execute(f"SELECT * FROM users WHERE name = '{name}'")
        key = os.environ["API_KEY"]
        late = datetime.now() < datetime.now(UTC)
        return key, late, clean(request.json)


    def clean(value):
        return [clean(v) for v in value] if isinstance(value, list) else value


    async def poll():
        time.sleep(1)
    """
)
EVERY_RULE_LINES = [
    ("MR111", 9),
    ("MR101", 11),
    ("MR102", 12),
    ("MR103", 13),
    ("MR104", 14),
    ("MR107", 16),
    ("MR105", 17),
    ("MR106", 21),
    ("MR108", 23),
    ("MR109", 24),
    ("MR110", 25),
    ("MR112", 30),
    ("MR113", 34),
]


def changed_file(path: str, text: str, lines: set[int] | None = None) -> ChangedFile:
    """``path`` as a new file, or with only ``lines`` changed."""
    count = len(source_lines(text))
    added = frozenset(lines if lines is not None else range(1, count + 1))
    return ChangedFile(path, None, "added", added, ((1, count),))


async def reviewed(path: str, text: str) -> list[tuple[str, int]]:
    """(rule, line) of each comment a review of ``text`` as the new file ``path`` keeps."""
    review = await review_files([changed_file(path, text)], {path: text}, now=NOW)
    return [(c.rule_id, c.line) for c in review.comments]


# -- comments ------------------------------------------------------------------------------


def test_every_rule_fires_once_on_its_line_of_a_module_that_breaks_them_all() -> None:
    assert [(c.rule_id, c.line) for c in comments(EVERY_RULE)] == EVERY_RULE_LINES
    assert {rule.id for rule in BUILTIN_RULES} == {rule for rule, _ in EVERY_RULE_LINES}


def test_a_comment_carries_its_rules_severity_the_code_of_its_line_and_a_suggestion() -> None:
    severity = {rule.id: rule.severity for rule in BUILTIN_RULES}
    lines = EVERY_RULE.split("\n")
    for comment in comments(EVERY_RULE):
        assert comment.source == "rule"
        assert comment.path == PATH
        assert comment.severity == severity[comment.rule_id]
        assert comment.code == lines[comment.line - 1].strip()
        assert comment.message and comment.suggestion


def test_comments_on_one_line_are_sorted_by_column() -> None:
    code = snippet(
        """
        from decimal import Decimal

        def pay(request):
            data = request.json
            return data.get("tip") * 2, charge(Decimal(data["amount"]))
        """
    )
    text = code.split("\n")[4]
    assert [(c.rule_id, c.line, c.column) for c in comments(code)] == [
        ("MR103", 5, text.index("data.get") + 1),
        ("MR101", 5, text.index("Decimal(") + 1),
        ("MR102", 5, text.index('data["amount"]') + 1),
    ]


def test_the_column_counts_characters_not_utf8_bytes() -> None:
    code = 'import requests\n\ndef café(url):\n    données = "é"; requests.get(url)\n'
    [comment] = comments(code)
    assert (comment.rule_id, comment.line) == ("MR107", 4)
    assert comment.column == code.split("\n")[3].index("requests.get") + 1


def test_one_comment_per_rule_and_line() -> None:
    code = """
    def view(request):
        return request.GET["a"] + request.GET["b"]
    """
    assert found(code) == [("MR102", 2)]


# -- changed lines -------------------------------------------------------------------------


def test_only_a_hit_on_a_changed_line_is_reported() -> None:
    assert found(EVERY_RULE, changed=[11, 34]) == [("MR101", 11), ("MR113", 34)]
    assert found(EVERY_RULE, changed=[10]) == []


def test_nothing_changed_gives_no_comments() -> None:
    assert found(EVERY_RULE, changed=[]) == []


def test_a_changed_line_of_a_statement_over_several_lines_reports_it_at_its_first() -> None:
    code = """
    import requests

    def rates(url):
        return requests.get(
            url,
            headers={"Accept": "application/json"},
        )
    """
    assert found(code, changed=[6]) == [("MR107", 4)]
    assert found(code, changed=[3]) == []


def test_a_guard_on_an_unchanged_line_still_counts() -> None:
    code = r"""
    import re

    def order_id(text):
        m = re.match(r"order-(\d+)", text)
        if m is None:
            raise ValueError(text)
        return m.group(1)
    """
    assert found(code, changed=[7]) == []


def test_a_try_on_unchanged_lines_still_catches_a_changed_parse() -> None:
    code = """
    def view(request):
        try:
            qty = int(request.GET.get("qty", "1"))
        except ValueError:
            qty = 1
        return qty
    """
    assert found(code, changed=[3]) == []


def test_a_function_without_changed_lines_is_not_reported_on() -> None:
    code = """
    import time

    async def old():
        time.sleep(1)

    async def new():
        time.sleep(2)
    """
    assert found(code, changed=[6, 7]) == [("MR113", 7)]


def test_a_changed_recursion_is_reported_though_its_caller_is_unchanged() -> None:
    code = """
    def clean(value):
        return [clean(v) for v in value] if isinstance(value, list) else value

    def view(request):
        return clean(request.json)
    """
    assert found(code, changed=[2]) == [("MR112", 2)]
    assert found(code, changed=[5]) == []


# -- suppression ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "rule_id", "suppressed"),
    [
        ("x = f()  # mendline: ignore", "MR101", True),
        ("x = f()  # mendline: ignore", "MRL3", True),
        ("x = f()  # mendline: ignore[MR101]", "MR101", True),
        ("x = f()  # mendline: ignore[MR101]", "MR102", False),
        ("x = f()  # mendline: ignore[MR101, MR102]", "MR102", True),
        ("x = f()  # mendline: ignore[ MR101 ,MR104 ]", "MR104", True),
        ("x = f()  # mendline: ignore[MR104, MRL3]", "MRL3", True),
        ("x = f()  # mendline: ignore[mr101]", "MR101", True),
        ("x = f()  # mendline: ignore[MR101]", " mr101 ", True),
        ("x = f()  # MENDLINE: IGNORE", "MR101", True),
        ("x = f()  #mendline:ignore[MR101]", "MR101", True),
        ("x = f()  # mendline: ignore [MR101]", "MR101", True),
        ("x = f()  # noqa: E501  # mendline: ignore[MR101]", "MR101", True),
        ("x = f()  # mendline: ignore[MR102]  # mendline: ignore[MR101]", "MR101", True),
        ("x = f()  # mendline: ignore[]", "MR101", False),
        ("x = f()  # mendline: ignore[MR1011]", "MR101", False),
        ("x = f()  # mendline: ignored", "MR101", False),
        ("x = f()  # mendline", "MR101", False),
        ("x = f()  # noqa", "MR101", False),
        ("x = f()", "MR101", False),
        ("", "MR101", False),
    ],
)
def test_is_suppressed_reads_the_inline_comment(line: str, rule_id: str, suppressed: bool) -> None:
    assert is_suppressed(line, rule_id) is suppressed


async def test_a_suppression_hides_only_its_rules_on_its_line() -> None:
    text = snippet(
        """
        from decimal import Decimal

        def pay(request):
            data = request.json
            first = Decimal(data["amount"])  # mendline: ignore[MR102]
            second = Decimal(data["total"])
            third = Decimal(data["tax"])  # mendline: ignore[MR101, MR102]
            fourth = Decimal(data["tip"])  # mendline: ignore
            return first + second + third + fourth
        """
    )
    assert await reviewed(PATH, text) == [("MR101", 5), ("MR101", 6), ("MR102", 6)]


async def test_a_suppression_on_another_line_of_a_statement_hides_nothing() -> None:
    text = snippet(
        """
        import requests

        def rates(url):
            return requests.get(
                url,  # mendline: ignore[MR107]
            )
        """
    )
    assert await reviewed(PATH, text) == [("MR107", 4)]


# -- tests and benchmarks ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["tests/test_views.py", "tests/unit/views.py", "bench/load.py", "test_views.py"],
)
async def test_tests_and_benchmarks_get_only_the_rules_not_about_input(path: str) -> None:
    assert await reviewed(path, EVERY_RULE) == [
        ("MR111", 9),
        ("MR107", 16),
        ("MR105", 17),
        ("MR106", 21),
        ("MR109", 24),
        ("MR110", 25),
        ("MR113", 34),
    ]


@pytest.mark.parametrize("path", ["shop/views.py", "latest/views.py", "shop/contest.py"])
async def test_other_paths_get_every_rule(path: str) -> None:
    assert await reviewed(path, EVERY_RULE) == EVERY_RULE_LINES


# -- odd, huge and deeply nested code ------------------------------------------------------


def test_odd_syntax_is_read_with_the_right_lines() -> None:
    code = r"""
    import asyncio
    import re
    import time

    import requests


    def route(event):
        match event:
            case {"kind": "order", "id": order_id}:
                return int(order_id)
            case [first, *_]:
                return first
            case _:
                return None


    @register(lambda handler: handler)
    @traced
    class Outer:
        class Inner:
            def method(self, items=[]):
                def fetch():
                    return requests.get(URL)

                items.append(fetch)
                return items

        async def collect(self, source):
            return [x async for x in source if (n := x.get("n")) is not None and n > 1]

        async def pause(self):
            await asyncio.gather(*(task() for task in TASKS))
            time.sleep(1)


    first_word = lambda text: re.match(r"\w+", text).group()
    """
    assert found(code) == [("MR111", 22), ("MR107", 24), ("MR113", 34), ("MR104", 37)]


def test_a_form_feed_does_not_shift_line_numbers() -> None:
    code = (
        "import requests\n"
        "\f\n"
        "def rates(url):\n"
        "    return requests.get(url)\n"
        "\f\n"
        "\fdef total(request):\n"
        '    qty = 1; \f price = int(request.GET["price"])\n'
        "    return qty * price\n"
    )
    found_comments = comments(code)
    assert [(c.rule_id, c.line) for c in found_comments] == [
        ("MR107", 4),
        ("MR101", 7),
        ("MR102", 7),
    ]
    assert found_comments[1].code == 'qty = 1; \f price = int(request.GET["price"])'


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("", id="empty"),
        pytest.param("# only a comment\n", id="comment"),
        pytest.param('"""A docstring."""\n', id="docstring"),
        pytest.param("def f(): ...\n", id="stub"),
    ],
)
def test_a_file_with_nothing_to_flag_gives_no_comments(code: str) -> None:
    assert comments(code) == []


DEEP = 2000  # nested deeper than Python's recursion limit lets a recursive reader follow


@pytest.mark.parametrize(
    "expression",
    [
        pytest.param("'SELECT * FROM t WHERE a = ' + a" + " + a" * DEEP, id="sql-plus-chain"),
        pytest.param("'SELECT %s FROM t WHERE x = 1'" + " % a" * DEEP, id="percent-chain"),
        pytest.param("request.json" + "['k']" * DEEP, id="item-chain"),
        pytest.param("a" + ".get('k')" * (DEEP // 2), id="call-chain"),
        pytest.param("datetime.now()" + " + timedelta(1)" * DEEP, id="datetime-chain"),
        pytest.param("not " * DEEP + "a.get('k')", id="not-chain"),
        pytest.param("-" * DEEP + "a.get('k')", id="unary-chain"),
        pytest.param("lambda: " * DEEP + "time.sleep(1)", id="lambda-chain"),
    ],
)
def test_an_expression_nested_thousands_deep_does_not_stop_the_rest_of_the_file(
    expression: str,
) -> None:
    code = (
        "import requests\n"
        "\n"
        "async def generated(request, cur, a):\n"
        f"    cur.execute({expression})\n"
        f"    if {expression}:\n"
        f"        return int({expression})\n"
        "\n"
        "def rates(url):\n"
        "    return requests.get(url)\n"
    )
    assert ("MR107", 9) in [(c.rule_id, c.line) for c in comments(code)]


def test_deeply_nested_functions_and_blocks_keep_their_lines() -> None:
    depth = 60
    lines = [f"{'    ' * i}def level{i}(request):" for i in range(depth)]
    lines += [f"{'    ' * (depth + i)}if request.user{i}:" for i in range(20)]
    lines.append(f"{'    ' * (depth + 20)}return int(request.GET.get('n', '1'))")
    code = "\n".join(lines) + "\n"
    assert [(c.rule_id, c.line) for c in comments(code)] == [("MR101", depth + 21)]


def test_a_huge_function_is_read_with_every_hit_on_its_line() -> None:
    body = "".join(
        f"    m{i} = re.match('x', text)\n    y{i} = m{i}.group()\n" for i in range(1500)
    )
    code = "import re\n\ndef parse(text):\n" + body
    started = time.perf_counter()
    found_lines = [(c.rule_id, c.line) for c in comments(code)]
    assert found_lines == [("MR104", 5 + 2 * i) for i in range(1500)]
    assert time.perf_counter() - started < 10


def test_many_functions_each_get_their_own_comments() -> None:
    code = "".join(
        f"def view{i}(request):\n    return int(request.GET.get('n{i}', '1'))\n" for i in range(500)
    )
    assert [(c.rule_id, c.line) for c in comments(code)] == [
        ("MR101", 2 * i + 2) for i in range(500)
    ]
