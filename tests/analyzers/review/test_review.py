"""review_files: which files are read and why others are not, line numbers as Python counts
them, suppression and disabled rules, a production source that fails, a 5,000-line file."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from mendline.analyzers.review import (
    INPUT_RULES,
    MAX_FILE_BYTES,
    is_test_path,
    read_diff,
    review_files,
    source_lines,
)
from mendline.schemas.errors import ServiceError
from mendline.schemas.review import ChangedFile, FrameRef, IssueRecord, LearnedRule

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)

#: A Flask handler whose line 6 parses a query parameter with nothing to catch bad text.
HANDLER = (
    "from flask import Flask, request\n"
    "app = Flask(__name__)\n"
    "\n"
    "@app.route('/orders')\n"
    "def orders():\n"
    "    qty = int(request.args.get('qty', '1'))\n"
    "    return {'qty': qty}\n"
)


def added(path: str, text: str, lines: Sequence[int] | None = None) -> ChangedFile:
    """``path`` as a new file, or with only ``lines`` changed."""
    count = len(source_lines(text))
    changed = frozenset(lines if lines is not None else range(1, count + 1))
    return ChangedFile(path, None, "added", changed, ((1, count),))


def rule_lines(review: object) -> list[tuple[str, int, str]]:
    return [(c.path, c.line, c.rule_id) for c in review.comments]  # type: ignore[attr-defined]


async def test_a_parse_of_request_text_is_reported_where_it_is() -> None:
    review = await review_files([added("shop.py", HANDLER)], {"shop.py": HANDLER}, now=NOW)
    assert rule_lines(review) == [("shop.py", 6, "MR101")]
    assert review.notes == ("production context not read: no source given",)


async def test_only_changed_lines_are_reported() -> None:
    unchanged = added("shop.py", HANDLER, lines=[7])
    review = await review_files([unchanged], {"shop.py": HANDLER}, now=NOW)
    assert review.comments == ()


@pytest.mark.parametrize(
    ("file", "contents", "reason"),
    [
        (ChangedFile("logo.png", None, "binary"), None, "binary"),
        (ChangedFile("gone.py", "gone.py", "deleted"), None, "deleted"),
        (added("notes.md", "# notes\n"), "# notes\n", "not Python (not reviewed yet)"),
        (ChangedFile("run.py", "run.py", "mode"), "x = 1\n", "mode change only"),
        (ChangedFile("same.py", "old.py", "renamed"), "x = 1\n", "no added lines"),
        (added("lost.py", "x = 1\n"), None, "cannot be read after the change"),
        (added("bad.py", "def f(:\n"), "def f(:\n", "cannot be parsed: line 1: invalid syntax"),
        (added("big.py", "x = 1\n"), "#" * (MAX_FILE_BYTES + 1), "larger than 2 MiB"),
    ],
)
async def test_a_file_not_read_is_listed_with_why(
    file: ChangedFile, contents: str | None, reason: str
) -> None:
    review = await review_files([file], {file.path: contents}, now=NOW)
    assert [(s.path, s.reason) for s in review.skipped] == [(file.path, reason)]
    assert review.comments == () and review.files == (file,)


@pytest.mark.parametrize("separator", ["\f", "\v", "\x1c", "\u2028", "\x85"])
async def test_lines_are_numbered_as_python_numbers_them(separator: str) -> None:
    # A form feed (an editor's page break) and the like are inside a line for Python's
    # tokenizer; str.splitlines would split there and put every later line one off.
    text = HANDLER.replace("app = Flask(__name__)\n", f"app = Flask(__name__)  # {separator}\n")
    review = await review_files([added("shop.py", text)], {"shop.py": text}, now=NOW)
    assert rule_lines(review) == [("shop.py", 6, "MR101")]
    (comment,) = review.comments
    assert comment.code == "qty = int(request.args.get('qty', '1'))"


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_source_lines_split_at_the_line_endings_python_knows(ending: str) -> None:
    text = ending.join(["a = 1", "b = '\f'", "c = 3"]) + ending
    assert source_lines(text) == ["a = 1", "b = '\f'", "c = 3"]
    assert source_lines("a = 1") == ["a = 1"] and source_lines("") == []


async def test_a_suppressed_line_and_a_disabled_rule_are_not_reported() -> None:
    quiet = HANDLER.replace("'1'))\n", "'1'))  # mendline: ignore[MR101]\n")
    review = await review_files([added("shop.py", quiet)], {"shop.py": quiet}, now=NOW)
    assert review.comments == ()
    review = await review_files(
        [added("shop.py", HANDLER)], {"shop.py": HANDLER}, disabled=frozenset({"MR101"}), now=NOW
    )
    assert review.comments == () and "MR101" not in {r.id for r in review.rules}


class FailingSource:
    """A production source whose database is down."""

    async def issues(
        self, file_names: Sequence[str], *, resolved_within_days: int
    ) -> list[IssueRecord]:
        raise ServiceError("connection refused", code="unreachable", retriable=True)

    async def learned_rules(self) -> list[LearnedRule]:
        raise AssertionError("not reached")


async def test_a_failing_production_source_is_a_note_and_the_rules_still_run() -> None:
    review = await review_files(
        [added("shop.py", HANDLER)], {"shop.py": HANDLER}, production=FailingSource(), now=NOW
    )
    assert rule_lines(review) == [("shop.py", 6, "MR101")]
    (note,) = review.notes
    assert note.startswith("production context not read: ") and "connection refused" in note


async def test_a_5000_line_file_is_reviewed_whole() -> None:
    handlers = "".join(
        f"@app.route('/r{i}')\ndef r{i}():\n    return {{'v': int(request.args['v{i}'])}}\n\n"
        for i in range(1250)
    )
    text = "from flask import Flask, request\napp = Flask(__name__)\n\n" + handlers
    assert len(source_lines(text)) == 5003
    review = await review_files([added("many.py", text)], {"many.py": text}, now=NOW)
    # Each handler's third line: int() of request text, nothing to catch it.
    assert [c.line for c in review.comments] == [6 + 4 * i for i in range(1250)]
    assert {c.rule_id for c in review.comments} == {"MR101"}


@pytest.mark.parametrize(
    ("path", "is_test"),
    [
        ("tests/test_orders.py", True),
        ("tests/helpers.py", True),
        ("src/shop/tests/fixtures.py", True),
        ("bench/ingest.py", True),
        ("benchmarks/run.py", True),
        ("test_shop.py", True),
        ("shop/orders_test.py", True),
        ("conftest.py", True),
        ("shop/orders.py", False),
        ("shop/testing_utils.py", False),
        ("contest/tests.py", False),
        ("shop/latest/views.py", False),
    ],
)
def test_tests_and_benchmarks_are_known_by_their_paths(path: str, is_test: bool) -> None:
    assert is_test_path(path) is is_test


async def test_in_tests_the_input_rules_are_not_reported_and_the_others_are() -> None:
    text = (
        "import requests\n"
        "def test_total(client):\n"
        "    body = client.get('/total').json()\n"
        "    assert int(body['total']) == 3\n"
        "    requests.get('http://127.0.0.1:8000/health')\n"
        "    try:\n"
        "        pass\n"
        "    except:\n"
        "        pass\n"
    )
    for path in ("tests/test_total.py", "shop/total.py"):
        review = await review_files([added(path, text)], {path: text}, now=NOW)
        found = {(c.line, c.rule_id) for c in review.comments}
        assert {(5, "MR107"), (8, "MR105")} <= found
        assert ({(4, "MR101"), (4, "MR102")} <= found) is (path == "shop/total.py")
        assert not INPUT_RULES & {rule for _, rule in found} or path == "shop/total.py"


async def test_excluded_paths_are_listed_as_skipped() -> None:
    files = [added("vendor/lib/x.py", HANDLER), added("shop.py", HANDLER)]
    contents = {"vendor/lib/x.py": HANDLER, "shop.py": HANDLER}
    review = await review_files(files, contents, exclude=["vendor/*", "*.pyi"], now=NOW)
    assert [(s.path, s.reason) for s in review.skipped] == [
        ("vendor/lib/x.py", "excluded (vendor/*)")
    ]
    assert rule_lines(review) == [("shop.py", 6, "MR101")]


async def test_a_file_with_a_byte_order_mark_is_read() -> None:
    text = "\ufeff" + HANDLER
    review = await review_files([added("shop.py", HANDLER)], {"shop.py": text}, now=NOW)
    assert rule_lines(review) == [("shop.py", 6, "MR101")] and review.skipped == ()


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("def f(request):\n    x = request" + ".a" * 1200 + "\n", "attributes"),
        ("def f(a):\n    return " + " + ".join(["a"] * 1500) + "\n", "a sum"),
        ("def f(a):\n    return " + "not " * 1500 + "a\n", "negations"),
    ],
)
async def test_code_nested_too_deeply_for_the_checks_is_skipped_not_fatal(
    code: str, kind: str
) -> None:
    files = [added("deep.py", code), added("shop.py", HANDLER)]
    review = await review_files(files, {"deep.py": code, "shop.py": HANDLER}, now=NOW)
    assert rule_lines(review) == [("shop.py", 6, "MR101")], kind
    reasons = {s.path: s.reason for s in review.skipped}
    assert reasons.get("deep.py") in {
        "nested too deeply to review",
        "cannot be parsed: RecursionError",
    }


@pytest.mark.parametrize(
    ("file", "reason"),
    [
        (
            ChangedFile(
                "shop.py", None, "added", frozenset({200_000_000}), ((200_000_000, 200_000_000),)
            ),
            "not as the diff leaves it: the diff adds line 200000000, the file has 7",
        ),
        (
            ChangedFile(
                "shop.py",
                "shop.py",
                "modified",
                frozenset({7}),
                ((5, 7),),
                (),
                ("    pass  # harmless",),
            ),
            "not as the diff leaves it: line 7 differs",
        ),
    ],
)
async def test_a_file_unlike_what_the_diff_says_is_not_reviewed(
    file: ChangedFile, reason: str
) -> None:
    # A diff given with a working tree at another commit: its line numbers say nothing.
    review = await review_files([file], {"shop.py": HANDLER}, now=NOW)
    assert review.comments == ()
    assert [(s.path, s.reason) for s in review.skipped] == [("shop.py", reason)]


async def test_the_added_text_of_a_real_diff_matches_the_file() -> None:
    text = "".join(
        difflib.unified_diff([], HANDLER.splitlines(keepends=True), "/dev/null", "b/shop.py")
    )
    crlf = text.replace("\n", "\r\n")
    for diff in (text, crlf):
        (file,) = read_diff(diff)
        review = await review_files([file], {"shop.py": HANDLER}, now=NOW)
        assert rule_lines(review) == [("shop.py", 6, "MR101")] and review.skipped == ()


class Production:
    """A production source with ``issues`` open in the shop's handler."""

    def __init__(self, issues: list[IssueRecord]) -> None:
        self._issues = issues

    async def issues(
        self, file_names: Sequence[str], *, resolved_within_days: int
    ) -> list[IssueRecord]:
        return [i for i in self._issues if i.frames[-1].filename.endswith(tuple(file_names))]

    async def learned_rules(self) -> list[LearnedRule]:
        return []


def open_issue(issue_id: int) -> IssueRecord:
    frame = FrameRef("/srv/app/shop.py", "shop", "orders", 6, HANDLER.splitlines()[5])
    return IssueRecord(
        issue_id=issue_id,
        title=f"ValueError number {issue_id}",
        status="unresolved",
        culprit=None,
        events_7d=issue_id,
        times_seen=issue_id,
        last_seen=NOW - timedelta(hours=issue_id),
        resolved_at=None,
        root_cause=None,
        verdict=None,
        patch=None,
        frames=(frame,),
        link=None,
    )


async def test_every_production_comment_on_one_line_is_kept() -> None:
    source = Production([open_issue(n) for n in range(1, 6)])
    changed = added("shop.py", HANDLER, lines=[6])
    review = await review_files([changed], {"shop.py": HANDLER}, production=source, now=NOW)
    told = [c for c in review.comments if c.rule_id == "MRP002"]
    assert len({c.message for c in told}) == len(told) >= 2
    said = " ".join(c.message for c in told)
    # The three busiest, the last saying how many more are open there.
    assert [f"ValueError number {n}" in said for n in (5, 4, 3, 2, 1)] == [1, 1, 1, 0, 0]
    assert "(and 2 more open" in said
