"""Whether a release holds a fix: its tag (as named, with a ``v``, or the version of
``package@version``) contains the fix's commit, merged or squashed in."""

from __future__ import annotations

from pathlib import Path

from mendline.sinks.forges import release_contains
from tests.git_helpers import apply_in, checkout, commit_all, git, make_repo

PATCH = (
    "--- a/calc/core.py\n+++ b/calc/core.py\n@@ -9 +9 @@\n"
    "-    return table[key]\n+    return table.get(key)\n"
)


async def test_a_release_holds_the_fix_once_merged_or_squashed_in(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    outcome = await apply_in(repo, tmp_path, PATCH)
    assert outcome.delivery is not None
    commit = outcome.delivery.commit
    where = checkout(repo, tmp_path)
    git(repo, "tag", "1.0")  # released before the fix was merged
    assert await release_contains(where, "1.0", commit) is False
    assert await release_contains(where, "2.0", commit) is None  # no such tag here

    git(repo, "merge", "-q", "--no-ff", "-m", "merge the fix", outcome.delivery.branch)
    git(repo, "tag", "v2.0")
    assert await release_contains(where, "2.0", commit) is True
    assert await release_contains(where, "shop@2.0", commit) is True  # Sentry's form


async def test_a_squashed_fix_counts_and_odd_release_names_are_never_options(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path)
    outcome = await apply_in(repo, tmp_path, PATCH)
    assert outcome.delivery is not None
    git(repo, "merge", "-q", "--squash", outcome.delivery.branch)
    commit_all(repo, "squashed fix")
    git(repo, "tag", "3.0")
    where = checkout(repo, tmp_path)
    assert await release_contains(where, "3.0", outcome.delivery.commit) is True
    assert await release_contains(
        where, git(repo, "rev-parse", "HEAD")[:12], outcome.delivery.commit
    )
    for odd in ("main", "HEAD", "--all", "HEAD~1", "main^", "3.0..main", "a b"):
        assert await release_contains(where, odd, outcome.delivery.commit) is None
