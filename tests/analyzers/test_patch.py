"""Reading unified diffs: git's and diff -u's, the heuristic's one-line patches, and
refusals that name the line."""

from __future__ import annotations

import re

import pytest

from mendline.analyzers.patch import (
    FilePatch,
    anchor_file,
    diff_lines,
    parse_patch,
    render_patch,
)
from mendline.analyzers.rootcause._patches import diff
from mendline.schemas.errors import InvalidPatch, PatchRefused

GIT_DIFF = """diff --git a/app/orders.py b/app/orders.py
index 3b18e51..a9c2d3f 100644
--- a/app/orders.py
+++ b/app/orders.py
@@ -10,3 +10,5 @@ def total(order):
     items = order["items"]
-    return sum(i["price"] for i in items)
+    if not items:
+        return 0
+    return sum(i.get("price", 0) for i in items)

@@ -30 +31 @@
-x = 1
+x = 2
diff --git a/docs/new.md b/docs/new.md
new file mode 100644
--- /dev/null
+++ b/docs/new.md
@@ -0,0 +1,2 @@
+# New
+text
\\ No newline at end of file
"""


def test_a_git_diff_reads_into_files_hunks_and_lines() -> None:
    orders, new = parse_patch(GIT_DIFF)
    assert (orders.old_path, orders.new_path, orders.path) == (
        "app/orders.py",
        "app/orders.py",
        "app/orders.py",
    )
    first, second = orders.hunks
    assert (first.old_start, first.old_count, first.new_start, first.new_count) == (10, 3, 10, 5)
    assert first.section == " def total(order):"
    assert first.removed == ['    return sum(i["price"] for i in items)']
    assert len(first.added) == 3 and first.old_lines[-1] == ""  # its space lost: still context
    assert (second.old_count, second.new_count, second.added) == (1, 1, ["x = 2"])
    assert orders.changed_lines == 6
    assert (new.old_path, new.path, new.added) == (None, "docs/new.md", ["# New", "text"])


def test_the_heuristics_one_line_patch_round_trips() -> None:
    text = diff("app/orders.py", 42, '    x = d["k"]', '    x = d.get("k")')
    (file,) = parse_patch(text)
    assert (file.path, file.hunks[0].old_start, file.added) == (
        "app/orders.py",
        42,
        ['    x = d.get("k")'],
    )
    assert render_patch(parse_patch(text)) == text
    moved = file.moved("src/app/orders.py", "src/app/orders.py")
    assert render_patch([moved]).startswith("--- a/src/app/orders.py\n+++ b/src/app/orders.py\n")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "no file in the patch"),
        ("just words\n", "no file in the patch"),
        ("@@ -1 +1 @@\n-a\n+b\n", "line 1: a hunk before any"),
        ("--- a/x\n+++ b/x\n", "has no hunk"),
        ("--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-a\n+b\n", "its header says 2 and 2"),
        ("--- a/x\n+++ b/x\n@@ -one +1 @@\n", "malformed hunk header"),
        ("--- /dev/null\n+++ /dev/null\n@@ -0,0 +1 @@\n+a\n", "neither an old nor a new"),
        ("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\nrm -rf /\n", "not part of a unified diff"),
    ],
)
def test_what_is_no_diff_is_refused_with_the_line(text: str, says: str) -> None:
    with pytest.raises(InvalidPatch, match=says):
        parse_patch(text)


def test_git_headers_and_no_newline_markers_are_kept_and_round_trip() -> None:
    text = (
        "diff --git a/app/x.py b/app/x.py\n"
        "index 3b18e51..a9c2d3f 100644\n"
        "--- a/app/x.py\n"
        "+++ b/app/x.py\n"
        "@@ -1,2 +1,2 @@\n"
        " a = 1\n"
        "-b = 2\n"
        "\\ No newline at end of file\n"
        "+b = 3\n"
        "\\ No newline at end of file\n"
    )
    (file,) = parse_patch(text)
    assert file.blobs == ("3b18e51", "a9c2d3f")
    assert (file.hunks[0].removed, file.hunks[0].added) == (["b = 2"], ["b = 3"])
    assert file.changed_lines == 2
    assert render_patch([file]) == text


def test_lines_end_at_newlines_only_and_a_format_patch_signature_ends_the_patch() -> None:
    text = "--- a/x\r\n+++ b/x\r\n@@ -1 +1 @@\r\n-a\x0cb\r\n+a\x0cc\r\n-- \n2.39.5\n\n"
    (file,) = parse_patch(text)
    assert (file.hunks[0].removed, file.hunks[0].added, file.blobs) == (
        ["a\x0cb"],
        ["a\x0cc"],
        None,
    )


def _one(old_start: int, old: str, new: str, path: str = "m.py") -> FilePatch:
    (file,) = parse_patch(diff(path, old_start, old, new))
    return file


BODY = "import os\n\n\ndef f(d):\n    x = d['k']\n    return x\n"


@pytest.mark.parametrize(
    ("current", "line", "expected"),
    [
        # Where the hunk says.
        (BODY, 5, "@@ -2,5 +2,5 @@\n \n \n def f(d):\n-    x = d['k']\n+    x = d.get('k')\n"),
        # Two lines were added above it since: found at the one place it is.
        (
            "import sys\nimport re\n" + BODY,
            5,
            "@@ -4,5 +4,5 @@\n \n \n def f(d):\n-    x = d['k']\n+    x = d.get('k')\n",
        ),
        # The first line, with no context above.
        (
            "    x = d['k']\nend\n",
            9,
            "@@ -1,2 +1,2 @@\n-    x = d['k']\n+    x = d.get('k')\n end\n",
        ),
    ],
)
def test_a_one_line_patch_is_anchored_with_real_context(
    current: str, line: int, expected: str
) -> None:
    anchored = anchor_file(_one(line, "    x = d['k']", "    x = d.get('k')"), current)
    assert render_patch([anchored]).startswith("--- a/m.py\n+++ b/m.py\n" + expected)


def test_a_hunk_with_context_moves_as_a_whole_and_keeps_crlf_and_the_missing_last_newline() -> None:
    (file,) = parse_patch("--- a/m.py\n+++ b/m.py\n@@ -1,2 +1,2 @@\n a\n-b\n+B\n")
    anchored = anchor_file(file, "z\r\na\r\nb")
    assert anchored.hunks[0].lines == (
        " z\r",
        " a\r",
        "-b",
        "\\ No newline at end of file",
        "+B",
        "\\ No newline at end of file",
    )
    assert (anchored.hunks[0].old_start, anchored.hunks[0].old_count) == (1, 3)


def test_a_deleted_file_is_anchored_when_the_patch_removes_all_of_it() -> None:
    (file,) = parse_patch("--- a/m.py\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-a\n-b\n")
    anchored = anchor_file(file, "a\nb\n")
    assert (anchored.new_path, anchored.hunks[0].lines) == (None, ("-a", "-b"))
    assert render_patch([anchored]).endswith("@@ -1,2 +0,0 @@\n-a\n-b\n")
    with pytest.raises(PatchRefused, match="has lines the patch lacks") as refused:
        anchor_file(file, "a\nb\nc\n")
    assert refused.value.code == "not_found"


def test_a_created_file_stays_as_it_is_when_it_is_not_there() -> None:
    (file,) = parse_patch("--- /dev/null\n+++ b/new.py\n@@ -0,0 +1 @@\n+x = 1\n")
    assert anchor_file(file, None) == file
    with pytest.raises(PatchRefused) as refused:
        anchor_file(file, "")
    assert refused.value.code == "exists"


TWO_HUNKS = "--- a/m.py\n+++ b/m.py\n@@ -1 +1 @@\n-a\n+A\n@@ -2 +2 @@\n-b\n+B\n"


@pytest.mark.parametrize(
    ("patch", "current", "code", "says"),
    [
        (diff("m.py", 5, "x = 1", "x = 2"), "x = 1\ny\nx = 1\n", "ambiguous", "lines 1, 3"),
        (diff("m.py", 1, "x = 1", "x = 2"), "x = 3\n", "not_found", "'x = 1'"),
        (diff("m.py", 1, "x = 1", "x = 2"), "x  = 1\n", "not_found", "not in the file"),
        (diff("m.py", 1, "x = 1", "x = 2"), None, "missing", "not there"),
        (diff("m.py", 1, "x = 1", "x = 1"), "x = 1\n", "no_change", "changes nothing"),
        ("--- a/m.py\n+++ b/m.py\n@@ -1,0 +2 @@\n+y\n", "x\n", "no_anchor", "only adds"),
        (
            "--- a/m.py\n+++ b/m.py\n@@ -1,2 +1 @@\n a\n-b\n@@ -2 +1,0 @@\n-b\n",
            "a\nb\n",
            "overlap",
            "hunk 2",
        ),
        (diff("../etc/passwd", 1, "a", "b"), "a\n", "unsafe_path", "outside"),
        (diff("/etc/passwd", 1, "a", "b"), "a\n", "unsafe_path", "outside"),
        (diff("app/.git/config", 1, "a", "b"), "a\n", "unsafe_path", "outside"),
        ("--- a/a.py\n+++ b/b.py\n@@ -1 +1 @@\n-a\n+b\n", "a\n", "rename", "renames"),
    ],
)
def test_a_hunk_that_does_not_fit_one_place_is_refused_with_the_reason(
    patch: str, current: str | None, code: str, says: str
) -> None:
    (file,) = parse_patch(patch)
    with pytest.raises(PatchRefused, match=re.escape(says)) as refused:
        anchor_file(file, current)
    assert refused.value.code == code


def test_hunks_of_one_file_are_placed_each_where_it_fits() -> None:
    (file,) = parse_patch(TWO_HUNKS)
    anchored = anchor_file(file, "0\na\nb\n")  # both moved down one line
    assert render_patch([anchored]).endswith("@@ -1,3 +1,3 @@\n 0\n-a\n-b\n+A\n+B\n")


def test_dot_github_and_dot_gitignore_are_ordinary_paths() -> None:
    for path in (".github/ci.yml", ".gitignore"):
        assert anchor_file(_one(1, "a", "b", path), "a\n").path == path


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        # git's headers, a hunk, and each kind of line in it
        (
            "diff --git a/x.py b/x.py\nindex 1111..2222 100644\n--- a/x.py\n+++ b/x.py\n"
            "@@ -1,2 +1,2 @@ def f\n a = 1\n-b = 2\n+b = 3\n",
            ["file", "file", "file", "file", "hunk", "context", "del", "add"],
        ),
        # inside a hunk, lines that read like headers are what the counts say they are
        (
            "--- a/q.sql\n+++ b/q.sql\n@@ -1,2 +1,2 @@\n--- old comment\n+++ new comment\n x\n",
            ["file", "file", "hunk", "del", "add", "context"],
        ),
        # git's marker after a line without a newline; a hunk without counts is one line
        (
            "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n\\ No newline at end of file\n",
            ["file", "file", "hunk", "del", "add", "context"],
        ),
        # a hunk cut short, then prose: read as it comes, never refused
        (
            "@@ -1,5 +1,5 @@\n-x\nsome prose\n+not in a hunk\n",
            ["hunk", "del", "context", "context"],
        ),
        # an empty context line that lost its space, and two files
        (
            "--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n\n-c\n+d\n"
            "--- a/y\n+++ b/y\n@@ -0,0 +1 @@\n+new\n",
            [
                "file",
                "file",
                "hunk",
                "context",
                "context",
                "del",
                "add",
                "file",
                "file",
                "hunk",
                "add",
            ],
        ),
        ("", ["context"]),
    ],
)
def test_each_line_of_a_diff_is_told_apart(text: str, kinds: list[str]) -> None:
    shown = diff_lines(text)
    assert [kind for kind, _ in shown] == kinds
    assert "\n".join(line for _, line in shown) == text.removesuffix("\n")
