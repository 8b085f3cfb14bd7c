"""The production context of a diff, pure: which repository path a production frame is in
(with code mappings and without), which changed function it falls in (qualnames, bare names
of old producers), the open issues told of, "likely fixes" by the finding's patch or by a
guard, "likely regression" within and outside the window, and hostile titles kept one line.

Each case is a real diff (difflib between the file before and after) of a small shop module,
with the changed functions worked out from the new source as a diff reader does."""

from __future__ import annotations

import ast
import difflib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from mendline.analyzers.review._production import (
    MOST_PER_FUNCTION,
    PRODUCTION_RULES,
    frame_path,
    production_context,
)
from mendline.schemas.fixpolicy import CodeMapping
from mendline.schemas.review import (
    LIKELY_FIX_RULE,
    PRODUCTION_RULE,
    REGRESSION_RULE,
    ChangedFile,
    ChangedFunction,
    FrameRef,
    IssueRecord,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
PATH = "shop/orders.py"

BEFORE = """\
FEE = 3.5


class Orders:
    def create(self, query):
        qty = int(query["qty"])
        return qty * 2

    def total(self, totals):
        return sum(totals) / len(totals)


class Carts:
    def create(self):
        return []


def handler(request):
    def inner(options):
        return FEE if options["gift_wrap"] else 0.0

    return inner(request)


def profile(user):
    return user.name.upper()
"""


def frame(function: str, line: str, *, filename: str = "/srv/app/shop/orders.py") -> FrameRef:
    """A frame of the shop's orders module as the app recorded it, at ``line`` of BEFORE."""
    lineno = BEFORE.splitlines().index(line) + 1 if line in BEFORE.splitlines() else None
    return FrameRef(filename, "shop.orders", function, lineno, line)


CREATE = frame("Orders.create", '        qty = int(query["qty"])')
TOTAL = frame("Orders.total", "        return sum(totals) / len(totals)")
INNER = frame("handler.<locals>.inner", '        return FEE if options["gift_wrap"] else 0.0')
PROFILE = frame("profile", "    return user.name.upper()")
API = FrameRef("/srv/app/shop/api.py", "shop.api", "post", 3, "    return Orders().create(q)")

#: The finding's patch of the gift-wrap issue, on the path the analyser names (the module's).
GIFT_PATCH = (
    "--- a/shop/orders.py\n+++ b/shop/orders.py\n@@ -19,1 +19,1 @@\n"
    '-        return FEE if options["gift_wrap"] else 0.0\n'
    '+        return FEE if options.get("gift_wrap") else 0.0\n'
)


def issue(
    issue_id: int,
    *frames: FrameRef,
    status: str = "unresolved",
    events_7d: int = 10,
    seen_ago: timedelta = timedelta(hours=2),
    resolved_ago: timedelta | None = None,
    patch: str | None = None,
    verdict: str | None = None,
    title: str = "ValueError: invalid literal for int() with base 10: 'x'",
) -> IssueRecord:
    """An issue whose latest event has ``frames`` (innermost last)."""
    return IssueRecord(
        issue_id=issue_id,
        title=title,
        status=status,
        culprit=None,
        events_7d=events_7d,
        times_seen=events_7d * 3,
        last_seen=NOW - seen_ago,
        resolved_at=None if resolved_ago is None else NOW - resolved_ago,
        root_cause="the quantity is not a number",
        verdict=verdict,
        patch=patch,
        frames=frames,
        link=f"https://mendline.example/issues/{issue_id}",
    )


def resolved(issue_id: int, *frames: FrameRef, days: int) -> IssueRecord:
    return issue(issue_id, *frames, status="resolved", resolved_ago=timedelta(days=days))


def diff(
    after: str, before: str = BEFORE, path: str = PATH
) -> tuple[ChangedFile, list[ChangedFunction], list[str]]:
    """The changed file, its changed functions and its lines after the change."""
    old, new = before.splitlines(), after.splitlines()
    added: set[int] = set()
    removed: list[str] = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "delete"):
            removed.extend(old[i1:i2])
        if tag in ("replace", "insert"):
            added.update(range(j1 + 1, j2 + 1))
    hunks = ((1, len(new)),)
    file = ChangedFile(path, None, "modified", frozenset(added), hunks, tuple(removed))
    return file, changed_functions(path, new, added), new


def changed_functions(path: str, lines: list[str], added: set[int]) -> list[ChangedFunction]:
    """The innermost function (decorators included) of each added line, as a diff reader
    finds them; ``<module>`` for lines outside any."""
    spans: list[tuple[str, int, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                spans.append((prefix + child.name, first, child.end_lineno or first))
                visit(child, f"{prefix}{child.name}.<locals>.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")

    visit(ast.parse("\n".join(lines)), "")
    found: dict[tuple[str, int, int], list[int]] = {}
    for line in sorted(added):
        inside = [s for s in spans if s[1] <= line <= s[2]]
        span = max(inside, key=lambda s: s[1]) if inside else ("<module>", 1, len(lines))
        found.setdefault(span, []).append(line)
    return [ChangedFunction(path, q, a, b, tuple(ls)) for (q, a, b), ls in found.items()]


def edited(old: str, new: str, before: str = BEFORE) -> str:
    assert old in before, old
    return before.replace(old, new, 1)


def line_of(text: str, lines: list[str]) -> int:
    return lines.index(text) + 1


# -- frame_path ---------------------------------------------------------------------------

REPO = {"shop/orders.py", "src/shop/orders.py", "src/shop/__init__.py", "a/util.py", "b/util.py"}


@pytest.mark.parametrize(
    ("filename", "module", "paths", "mappings", "expected"),
    [
        # without mappings: the filename ends with / and a repository path; the longest wins
        ("/srv/app/shop/orders.py", None, {"shop/orders.py"}, [], "shop/orders.py"),
        ("/srv/app/src/shop/orders.py", None, REPO, [], "src/shop/orders.py"),
        ("shop/orders.py", None, {"shop/orders.py"}, [], "shop/orders.py"),
        ("C:\\app\\shop\\orders.py", None, {"shop/orders.py"}, [], "shop/orders.py"),
        # on folder boundaries only
        ("/srv/myshop/orders.py", None, {"shop/orders.py"}, [], None),
        # the module's path is the repository path or ends it
        ("<string>", "shop.orders", {"src/shop/orders.py"}, [], "src/shop/orders.py"),
        ("/site/x.py", "shop", {"src/shop/__init__.py"}, [], "src/shop/__init__.py"),
        ("<string>", "hop.orders", {"shop/orders.py"}, [], None),
        # two alike: none
        ("/srv/util.py", "util", REPO, [], None),
        ("/srv/app/x.py", None, REPO, [], None),
        # with mappings: exactly, the longest stack_root
        ("/srv/app/shop/orders.py", None, REPO, [("/srv/app/", "src/")], "src/shop/orders.py"),
        (
            "/srv/app/shop/orders.py",
            None,
            REPO,
            [("/srv/", ""), ("/srv/app/", "src/")],
            "src/shop/orders.py",
        ),
        ("/elsewhere/o.py", "shop.orders", REPO, [("shop.", "src/shop/")], "src/shop/orders.py"),
        # mapped where the diff has no file, or under no stack_root: no suffix guess then
        ("/srv/app/shop/orders.py", None, REPO, [("/srv/app/", "lib/")], None),
        ("/srv/app/shop/orders.py", None, REPO, [("/opt/", "")], None),
        ("/srv/app/../shop/orders.py", None, REPO, [("/srv/app/", "")], None),
    ],
)
def test_frame_path(
    filename: str,
    module: str | None,
    paths: set[str],
    mappings: list[tuple[str, str]],
    expected: str | None,
) -> None:
    ref = FrameRef(filename, module, "f", 1, "x = 1")
    maps = [CodeMapping(stack_root=s, source_root=r) for s, r in mappings]
    assert frame_path(ref, paths, maps) == expected


# -- production_context: one diff, the issues, what is said ----------------------------

RENAMED_CREATE = edited("        return qty * 2", "        return qty * 3")
PATCHED_INNER = edited('options["gift_wrap"] else', 'options.get("gift_wrap") else')
GET_DEFAULT = edited('int(query["qty"])', 'int(query.get("qty", 0))')
TRY_AROUND = edited(
    '        qty = int(query["qty"])\n',
    '        try:\n            qty = int(query["qty"])\n'
    "        except ValueError:\n            qty = 0\n",
)
IF_NONE = edited(
    "    return user.name.upper()", '    return user.name.upper() if user is not None else ""'
)
UNRELATED_GUARD = edited(
    "        return sum(totals) / len(totals)",
    "        if not FEE:\n            return 0.0\n        return sum(totals) / (len(totals) or 1)",
)
GUARD_BEFORE_UNCHANGED = edited(
    "        return sum(totals) / len(totals)",
    "        if not totals:\n            return 0.0\n        return sum(totals) / len(totals)",
)
NICKNAME = BEFORE + "\n\ndef nickname(user):\n    return user.name.upper()\n"
PROFILE_MOVED = BEFORE.replace(
    "\n\ndef profile(user):\n    return user.name.upper()\n", ""
).replace("FEE = 3.5\n", "FEE = 3.5\n\n\ndef profile(user):\n    return user.name.upper()\n")
TWO_PATCH_LINES = (
    "--- a/shop/orders.py\n+++ b/shop/orders.py\n@@ -19,1 +19,2 @@\n"
    '-        return FEE if options["gift_wrap"] else 0.0\n'
    "+        options = dict(options)\n"
    '+        return FEE if options.get("gift_wrap") else 0.0\n'
)

# Each case: the file after the change, the issues, and what is expected: each changed
# function with issues (its issues' ids, and those likely fixed) and the comments (rule,
# the text of their line, issue).
CASES = {
    "an open issue in a changed method": (
        RENAMED_CREATE,
        [issue(1, API, CREATE)],
        {"Orders.create": ([1], [])},
        {(PRODUCTION_RULE, "        return qty * 3", 1)},
    ),
    "a bare name unique in the file (an old producer)": (
        UNRELATED_GUARD,
        [issue(1, replace(TOTAL, function="total"))],
        {"Orders.total": ([1], [])},
        {(PRODUCTION_RULE, "        if not FEE:", 1)},
    ),
    "a bare name two functions end with": (
        RENAMED_CREATE,
        [issue(1, replace(CREATE, function="create"))],
        {},
        set(),
    ),
    "a frame of a function the diff does not change": (
        RENAMED_CREATE,
        [issue(1, PROFILE)],
        {},
        set(),
    ),
    "a frame of another file": (RENAMED_CREATE, [issue(1, API)], {}, set()),
    "likely fixed by the finding's patch (a nested function)": (
        PATCHED_INNER,
        [issue(3, INNER, patch=GIFT_PATCH)],
        {"handler.<locals>.inner": ([3], [3])},
        {(LIKELY_FIX_RULE, '        return FEE if options.get("gift_wrap") else 0.0', 3)},
    ),
    "a patch of a finding marked wrong is no evidence": (
        PATCHED_INNER,
        [issue(3, INNER, patch=GIFT_PATCH, verdict="wrong")],
        {"handler.<locals>.inner": ([3], [])},
        {(PRODUCTION_RULE, '        return FEE if options.get("gift_wrap") else 0.0', 3)},
    ),
    "a patch the diff has only part of": (
        PATCHED_INNER,
        [issue(3, INNER, patch=TWO_PATCH_LINES)],
        {"handler.<locals>.inner": ([3], [])},
        {(PRODUCTION_RULE, '        return FEE if options.get("gift_wrap") else 0.0', 3)},
    ),
    "likely fixed by .get() with a default": (
        GET_DEFAULT,
        [issue(1, CREATE)],
        {"Orders.create": ([1], [1])},
        {(LIKELY_FIX_RULE, '        qty = int(query.get("qty", 0))', 1)},
    ),
    "likely fixed by a try/except around the line": (
        TRY_AROUND,
        [issue(1, API, CREATE)],
        {"Orders.create": ([1], [1])},
        {(LIKELY_FIX_RULE, "        try:", 1)},
    ),
    "likely fixed by an is-None check": (
        IF_NONE,
        [issue(5, PROFILE)],
        {"profile": ([5], [5])},
        {(LIKELY_FIX_RULE, '    return user.name.upper() if user is not None else ""', 5)},
    ),
    "a guard of something the line does not read": (
        UNRELATED_GUARD,
        [issue(2, TOTAL)],
        {"Orders.total": ([2], [])},
        {(PRODUCTION_RULE, "        if not FEE:", 2)},
    ),
    "a guard before the failed line left as it was": (
        GUARD_BEFORE_UNCHANGED,
        [issue(2, TOTAL)],
        {"Orders.total": ([2], [])},
        {(PRODUCTION_RULE, "        if not totals:", 2)},
    ),
    "an ignored issue is context, not a comment": (
        RENAMED_CREATE,
        [issue(1, CREATE, status="ignored")],
        {"Orders.create": ([1], [])},
        set(),
    ),
    "a regression: the line of an issue resolved 3 days ago, in another function": (
        NICKNAME,
        [resolved(9, PROFILE, days=3)],
        {},
        {(REGRESSION_RULE, "    return user.name.upper()", 9)},
    ),
    "resolved 40 days ago: outside the window": (
        NICKNAME,
        [resolved(9, PROFILE, days=40)],
        {},
        set(),
    ),
    "a resolved issue's line the diff moves is no regression": (
        PROFILE_MOVED,
        [resolved(9, PROFILE, days=3)],
        {"profile": ([9], [])},
        set(),
    ),
    "a resolved issue whose culprit is in another file": (
        NICKNAME,
        [resolved(9, PROFILE, API, days=3)],
        {},
        set(),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_production_context(case: str) -> None:
    after, records, contexts, comments = CASES[case]
    file, functions, lines = diff(after)
    found, said = production_context(
        [file], functions, {PATH: lines}, records, [], now=NOW, regression_days=30
    )
    assert {
        c.function.qualname: ([i.issue_id for i in c.issues], list(c.likely_fixes)) for c in found
    } == contexts
    # A comment's code is its line without the indentation.
    assert {(c.rule_id, c.code, c.issue_id) for c in said} == {
        (rule, code.strip(), issue) for rule, code, issue in comments
    }
    for comment in said:
        assert lines[comment.line - 1].strip() == comment.code  # on the line it names
        assert comment.link == f"https://mendline.example/issues/{comment.issue_id}"
        assert f"#{comment.issue_id} " in comment.message
        assert comment.source == "production"
        assert comment.severity == ("warning" if comment.rule_id == REGRESSION_RULE else "info")


def test_mapped_frames_find_their_function() -> None:
    file, functions, lines = diff(GET_DEFAULT)
    mapped = replace(file, path="src/shop/orders.py")
    moved = [replace(f, path=mapped.path) for f in functions]
    ref = replace(CREATE, filename="/deploy/releases/42/shop/orders.py", module=None)
    mappings = [CodeMapping(stack_root="/deploy/releases/42/", source_root="src/")]
    found, said = production_context(
        [mapped], moved, {mapped.path: lines}, [issue(1, ref)], mappings, now=NOW
    )
    assert [(c.function.qualname, c.likely_fixes) for c in found] == [("Orders.create", (1,))]
    assert [(c.rule_id, c.path) for c in said] == [(LIKELY_FIX_RULE, "src/shop/orders.py")]


def test_frames_of_a_renamed_file_name_its_old_path() -> None:
    file, functions, lines = diff(GET_DEFAULT)
    renamed = replace(file, path="shop/ordering.py", old_path=PATH, status="renamed")
    moved = [replace(f, path=renamed.path) for f in functions]
    found, said = production_context(
        [renamed], moved, {renamed.path: lines}, [issue(1, CREATE)], [], now=NOW
    )
    assert [(c.function.path, c.likely_fixes) for c in found] == [("shop/ordering.py", (1,))]
    assert [(c.rule_id, c.path) for c in said] == [(LIKELY_FIX_RULE, "shop/ordering.py")]


def test_open_issues_are_ordered_and_at_most_three_are_told_of() -> None:
    file, functions, lines = diff(RENAMED_CREATE)
    records = [
        issue(11, CREATE, events_7d=5),
        issue(12, CREATE, events_7d=50),
        issue(13, CREATE, events_7d=5, seen_ago=timedelta(minutes=5)),
        issue(14, CREATE, events_7d=1),
        issue(15, CREATE, events_7d=0),
        issue(16, CREATE, events_7d=99, status="ignored"),
    ]
    (context,), said = production_context([file], functions, {PATH: lines}, records, [], now=NOW)
    assert [i.issue_id for i in context.issues] == [16, 12, 13, 11, 14, 15]
    assert [c.issue_id for c in said] == [12, 13, 11][:MOST_PER_FUNCTION]
    assert all(c.rule_id == PRODUCTION_RULE for c in said)
    assert said[-1].message.endswith("(and 2 more open issues here).")
    assert "more open" not in said[0].message
    first = said[0].message
    assert "50 events in the last 7 days, last seen 2h ago" in first
    assert "root cause: the quantity is not a number" in first


def test_hostile_titles_and_root_causes_stay_one_line() -> None:
    hostile = "ZeroDivisionError: x\n::error file=a::owned\r\x1b[31mred\u202egnp.exe" + "A" * 500
    file, functions, lines = diff(RENAMED_CREATE)
    records = [
        replace(issue(1, CREATE), title=hostile, root_cause="line one\nline two\x07"),
        replace(resolved(9, PROFILE, days=2), title=hostile),
    ]
    file2, functions2, lines2 = diff(NICKNAME)
    both = production_context([file], functions, {PATH: lines}, records, [], now=NOW)[1]
    both += production_context([file2], functions2, {PATH: lines2}, records, [], now=NOW)[1]
    assert {c.rule_id for c in both} == {PRODUCTION_RULE, REGRESSION_RULE}
    for comment in both:
        message = comment.message
        assert message.isprintable(), message
        assert "x ::error file=a::owned \\x1b[31mred\\u202egnp" in message  # one line, escaped
        assert len(message) < 500  # the title clipped
    production = next(c for c in both if c.rule_id == PRODUCTION_RULE)
    assert "root cause: line one line two\\x07" in production.message


def test_the_rules_are_the_production_ones() -> None:
    assert [(r.id, r.severity, r.source) for r in PRODUCTION_RULES] == [
        (REGRESSION_RULE, "warning", "production"),
        (PRODUCTION_RULE, "info", "production"),
        (LIKELY_FIX_RULE, "info", "production"),
    ]
    assert all(r.name.replace("-", "").isalpha() and r.name.islower() for r in PRODUCTION_RULES)
