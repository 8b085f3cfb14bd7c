"""What a fix's patch may not bring into a worktree before it is verified (verifying runs the
repository's code with the patch): new calls that run commands, Python that does not parse,
symbolic links and submodules. Real repositories, real pytest runs."""

from __future__ import annotations

from pathlib import Path

from tests.git_helpers import apply_in, git, make_repo


def _branches(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/").split()


def _worktrees(repo: Path) -> int:
    return git(repo, "worktree", "list", "--porcelain").count("worktree ")


def _top_of_core(*added: str) -> str:
    """A patch adding ``added`` at the top of calc/core.py (before its docstring)."""
    body = "".join(f"+{line}\n" for line in added)
    return (
        "--- a/calc/core.py\n+++ b/calc/core.py\n"
        f"@@ -1,2 +1,{2 + len(added)} @@\n"
        f"{body}"
        ' """Small arithmetic for the tests."""\n'
        " \n"
    )


async def test_a_command_split_over_lines_is_refused_before_the_tests_import_it(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path)
    marker = tmp_path / "pwned"
    patch = _top_of_core("import os", "_ = (os.", f"     system)('echo pwned > {marker}')")

    outcome = await apply_in(repo, tmp_path, patch)

    assert (outcome.result, outcome.code) == ("refused", "rejected")
    assert outcome.reason is not None and "calc/core.py:2 calls os.system" in outcome.reason
    assert outcome.verification is None
    assert not marker.exists()  # nothing ran it
    assert _branches(repo) == ["main"]
    assert _worktrees(repo) == 1


async def test_a_call_the_file_had_already_does_not_refuse_a_fix(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    core = repo / "calc" / "core.py"
    core.write_text(core.read_text() + "\n\ndef shell(cmd):\n    import os\n    os.system(cmd)\n")
    git(repo, "commit", "-qam", "shell")
    patch = (
        "--- a/calc/core.py\n+++ b/calc/core.py\n@@ -8,3 +8,3 @@\n"
        " def lookup(table, key):\n-    return table[key]\n+    return table.get(key)\n \n"
    )
    outcome = await apply_in(repo, tmp_path, patch)
    assert outcome.result == "applied", outcome.reason


async def test_python_that_does_not_parse_once_patched_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    outcome = await apply_in(repo, tmp_path, _top_of_core("def broken(:"))
    assert (outcome.result, outcome.code) == ("refused", "rejected")
    assert outcome.reason is not None and "calc/core.py:1: not Python" in outcome.reason
    assert outcome.verification is None
    assert _branches(repo) == ["main"]


async def test_a_symbolic_link_or_a_submodule_is_never_made(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    link = (
        "diff --git a/calc/data b/calc/data\nnew file mode 120000\n"
        "--- /dev/null\n+++ b/calc/data\n@@ -0,0 +1 @@\n+/etc\n\\ No newline at end of file\n"
    )
    outcome = await apply_in(repo, tmp_path, link)
    assert (outcome.result, outcome.code) == ("refused", "rejected")
    assert outcome.reason is not None and "calc/data: the patch makes it a symbolic link" in (
        outcome.reason
    )
    assert _branches(repo) == ["main"]
