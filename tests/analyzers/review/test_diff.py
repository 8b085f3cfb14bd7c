"""The diff reader on git's real diffs (made from a real history by the review's own git
reads) and on plain diff -u output: statuses, paths, added lines, hunks, removed text."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from mendline.analyzers.review._diff import read_diff
from mendline.schemas.errors import InvalidPatch
from mendline.schemas.review import ChangedFile
from mendline.sinks.forges._git import Git
from mendline.sinks.forges._review_git import files_at, large_files, merge_base, range_diff
from tests.git_helpers import commit_all, git

BEFORE = (
    "def total(prices):\n    return sum(prices)\n\n\n"
    "def lookup(table, key):\n    return table[key]\n"
)
AFTER = (
    "def total(prices):\n    return sum(prices)\n\n\n"
    "def lookup(table, key):\n    value = table.get(key)\n    return value or 0\n"
)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A repository whose second commit adds, changes, deletes, renames (with a change),
    copies nothing, changes a mode, adds a binary, and adds files with a space and a
    non-ASCII letter in their names."""
    repo = tmp_path_factory.mktemp("diff") / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "calc.py").write_text(BEFORE)
    (repo / "gone.py").write_text("x = 1\n")
    (repo / "old_name.py").write_text("".join(f"line_{i} = {i}\n" for i in range(30)))
    (repo / "run.sh").write_text("echo hi\n")
    (repo / "logo.bin").write_bytes(b"\x00\x01\x02")
    base = commit_all(repo, "base")
    (repo / "calc.py").write_text(AFTER)
    (repo / "gone.py").unlink()
    (repo / "old_name.py").rename(repo / "new_name.py")
    moved = (repo / "new_name.py").read_text().replace("line_5 = 5", "line_5 = 55")
    (repo / "new_name.py").write_text(moved)
    os.chmod(repo / "run.sh", 0o755)
    (repo / "logo.bin").write_bytes(b"\x00\x01\x02\x03")
    (repo / "with space.py").write_text("a = 1\nb = 2\n")
    (repo / "café.py").write_text("name = 'café'\n")
    (repo / "notes.md").write_text("# notes\n")
    head = commit_all(repo, "head")
    return repo, base, head


async def _diff(repo: Path, base: str, head: str) -> str:
    return await range_diff(Git(repo), base, head)


async def test_git_range_reads_every_kind_of_change(history: tuple[Path, str, str]) -> None:
    repo, base, head = history
    files = {f.path: f for f in read_diff(await _diff(repo, base, head))}
    assert files["calc.py"].status == "modified"
    # Lines 6 and 7 after the change are new (the old line 6 was replaced).
    assert files["calc.py"].added == frozenset({6, 7})
    assert files["calc.py"].removed == ("    return table[key]",)
    assert files["calc.py"].in_diff(3) and not files["calc.py"].in_diff(1)
    assert files["gone.py"].status == "deleted" and files["gone.py"].old_path == "gone.py"
    renamed = files["new_name.py"]
    assert (renamed.status, renamed.old_path, renamed.added) == (
        "renamed",
        "old_name.py",
        frozenset({6}),
    )
    assert files["run.sh"].status == "mode" and not files["run.sh"].added
    assert files["logo.bin"].status == "binary"
    assert files["with space.py"].status == "added"
    assert files["with space.py"].added == frozenset({1, 2})
    assert files["café.py"].added == frozenset({1})
    assert files["notes.md"].language is None and files["calc.py"].language == "python"


async def test_git_quoted_paths_are_read_back(history: tuple[Path, str, str]) -> None:
    repo, base, head = history
    # git's own default quotes the non-ASCII name: "b/caf\303\251.py".
    quoted = git(repo, "diff", base, head, "--", "café.py")
    assert '"a/caf\\303\\251.py"' in quoted or '"b/caf\\303\\251.py"' in quoted
    (file,) = read_diff(quoted + "\n")
    assert (file.path, file.status) == ("café.py", "added")


async def test_files_at_reads_the_head_and_says_none_for_the_missing(
    history: tuple[Path, str, str],
) -> None:
    repo, _base, head = history
    found = await files_at(Git(repo), head, ["calc.py", "gone.py", "with space.py", "nope x.py"])
    assert found["calc.py"] == AFTER
    assert found["with space.py"] == "a = 1\nb = 2\n"
    assert found["gone.py"] is None and found["nope x.py"] is None


async def test_merge_base_of_a_branch(history: tuple[Path, str, str]) -> None:
    repo, base, head = history
    git(repo, "branch", "-f", "feature", base)
    assert await merge_base(Git(repo), "feature", head) == base


def test_plain_unified_diff() -> None:
    text = "".join(
        difflib.unified_diff(
            BEFORE.splitlines(keepends=True),
            AFTER.splitlines(keepends=True),
            "calc.py",
            "calc.py",
        )
    )
    (file,) = read_diff(text)
    assert file == ChangedFile(
        path="calc.py",
        old_path="calc.py",
        status="modified",
        added=frozenset({6, 7}),
        hunks=((3, 7),),
        removed=("    return table[key]",),
        added_text=("    value = table.get(key)", "    return value or 0"),
    )


def test_an_empty_diff_has_no_file_and_garbage_is_refused() -> None:
    assert read_diff("") == [] and read_diff("\n \n") == []
    with pytest.raises(InvalidPatch):
        read_diff("this is not a diff\nat all\n")
    with pytest.raises(InvalidPatch):
        read_diff("diff --git \n")


def test_a_5000_line_diff() -> None:
    new = "".join(f"value_{i} = int(raw[{i}])\n" for i in range(5000))
    text = "".join(difflib.unified_diff([], new.splitlines(keepends=True), "/dev/null", "b/big.py"))
    (file,) = read_diff(text)
    assert file.status == "added" and len(file.added) == 5000 and file.hunks == ((1, 5000),)


async def test_files_too_large_to_read_are_found_and_left_out_of_the_diff(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "gone.csv").write_text("a,b\n" * 800_000)  # 3.2 MB, deleted below
    (repo / "small.py").write_text("x = 1\n")
    base = commit_all(repo, "base")
    (repo / "gone.csv").unlink()
    (repo / "data.csv").write_text("1,2\n" * 800_000)
    (repo / "small.py").write_text("x = 2\n")
    (repo / "big name.py").write_text("y = 1\n" * 600_000)
    head = commit_all(repo, "head")
    found = await large_files(Git(repo), base, head, 2 * 1024 * 1024)
    assert sorted(found) == ["big name.py", "data.csv", "gone.csv"]
    diff = await range_diff(Git(repo), base, head, leave_out=found)
    assert [f.path for f in read_diff(diff)] == ["small.py"]
    assert await large_files(Git(repo), head, head, 1) == []
