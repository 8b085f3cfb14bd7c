"""Reading unified diffs: git's and diff -u's, the heuristic's one-line patches, and
refusals that name the line."""

from __future__ import annotations

import pytest

from mendline.analyzers.patch import parse_patch, render_patch
from mendline.analyzers.rootcause._patches import diff
from mendline.schemas.errors import InvalidPatch

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
