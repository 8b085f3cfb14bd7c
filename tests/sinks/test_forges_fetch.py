"""The remote's base and tags fetched into the clone: a fix merged on the forge only is
reverted from the remote's base, a tag pushed to the remote only is seen as a release, the
token only in git's environment, and a clone with no remote left alone."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from mendline.analyzers.rootcause._patches import diff
from mendline.schemas.errors import ForgeError
from mendline.sinks.forges import (
    DeliveryPlan,
    RevertChange,
    fetch_base,
    release_contains,
    revert,
)
from tests.forge_servers import FakeGitRemote, fake_forge
from tests.git_helpers import (
    CORE,
    apply_in,
    bare_remote,
    checkout,
    git,
    make_repo,
    plan_with_tests,
)

FIX = "mendline/fix-1-2"
PATCH = diff("calc/core.py", 9, "    return table[key]", "    return table.get(key)")
TOKEN = "ghp_fetchTokenThatMustNeverShow0123456789"


async def _pushed_fix(repo: Path, tmp_path: Path) -> str:
    """The fix applied and pushed to the bare remote ``origin``; its commit."""
    outcome = await apply_in(repo, tmp_path, PATCH, DeliveryPlan(mode="push"))
    assert outcome.delivery is not None, outcome.reason
    return outcome.delivery.commit


def _on_the_forge(bare: Path, tmp_path: Path, *commands: tuple[str, ...]) -> str:
    """Run ``commands`` in a clone of ``bare`` (someone else's), push main and tags back;
    the remote's main."""
    other = tmp_path / "elsewhere"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    for command in commands:
        git(other, *command)
    git(other, "push", "-q", "--tags", "origin", "main")
    return git(bare, "rev-parse", "main")


async def test_a_fix_merged_on_the_forge_only_is_reverted_from_the_remotes_base(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path)
    bare = bare_remote(repo, tmp_path)
    commit = await _pushed_fix(repo, tmp_path)
    merge = ("merge", "-q", "--no-ff", "-m", "Merge pull request #1", f"origin/{FIX}")
    remote_main = _on_the_forge(bare, tmp_path, merge)
    local_main = git(repo, "rev-parse", "main")
    where, plan = checkout(repo, tmp_path), DeliveryPlan(mode="push")

    assert await fetch_base(where, plan) is True
    assert git(repo, "rev-parse", "refs/remotes/origin/main") == remote_main
    assert git(repo, "rev-parse", "main") == local_main  # the user's branch never moves
    outcome = await revert(
        where,
        RevertChange(1, 2, commit, "it hides a bug", "KeyError: 'a'", ("bob",)),
        delivery=plan,
        verify_plan=plan_with_tests(),
    )

    assert outcome.result == "applied" and outcome.delivery is not None, outcome.reason
    assert outcome.delivery.branch == "mendline/revert-1-2"  # not onto the dead fix branch
    assert git(repo, "rev-parse", "mendline/revert-1-2^") == remote_main
    assert git(bare, "show", "mendline/revert-1-2:calc/core.py") + "\n" == CORE
    assert git(repo, "rev-parse", FIX) == commit


async def test_a_tag_pushed_to_the_remote_only_is_seen_after_the_fetch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    bare = bare_remote(repo, tmp_path)
    commit = await _pushed_fix(repo, tmp_path)
    merge = ("merge", "-q", "--no-ff", "-m", "merge the fix", f"origin/{FIX}")
    _on_the_forge(bare, tmp_path, merge, ("tag", "v2.0"))
    where = checkout(repo, tmp_path)
    assert await release_contains(where, "2.0", commit) is None  # not in the clone yet

    assert await fetch_base(where, DeliveryPlan()) is True  # fixes kept as branches, too

    assert await release_contains(where, "2.0", commit) is True
    assert await release_contains(where, "shop@2.0", commit) is True


async def test_a_clone_without_the_remote_is_not_fetched(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "tag", "v1.0")
    before = git(repo, "for-each-ref")

    assert (
        await fetch_base(checkout(repo, tmp_path), DeliveryPlan(mode="patch", patch_dir=tmp_path))
        is False
    )
    assert git(repo, "for-each-ref") == before


async def test_a_failed_fetch_is_retriable_and_sends_the_token_as_a_header_only(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path)
    with fake_forge(FakeGitRemote()) as remote:
        git(repo, "remote", "add", "origin", remote.url)
        plan = DeliveryPlan(mode="push", push_token=TOKEN)
        with pytest.raises(ForgeError) as failed:
            await fetch_base(checkout(repo, tmp_path), plan)

    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert remote.requests and remote.requests[0].headers["authorization"] == f"Basic {basic}"
    assert all(TOKEN not in request.path for request in remote.requests)
    assert failed.value.code == "git_failed" and failed.value.retriable
    assert "could not fetch main from the remote 'origin'" in str(failed.value)
    assert TOKEN not in str(failed.value) and basic not in str(failed.value)
    assert TOKEN not in git(repo, "config", "--list")


async def test_a_local_tag_that_differs_from_the_remotes_does_not_block_the_fetch(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path)
    bare = bare_remote(repo, tmp_path)
    remote_main = _on_the_forge(
        bare,
        tmp_path,
        ("commit", "-q", "--allow-empty", "-m", "released"),
        ("tag", "2.0"),
        ("tag", "3.0"),
    )
    git(repo, "tag", "2.0")  # the user's own 2.0, elsewhere: never overwritten
    where = checkout(repo, tmp_path)
    assert await fetch_base(where, DeliveryPlan(mode="push")) is True
    assert git(repo, "rev-parse", "refs/remotes/origin/main") == remote_main
    assert git(repo, "rev-parse", "3.0^{commit}") == remote_main  # the other tags came
    assert git(repo, "rev-parse", "2.0^{commit}") != remote_main  # the user's kept
