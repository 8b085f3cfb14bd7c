"""Self-healing's hands: a fix applied in a worktree of its own, verified, committed and
delivered; a fix reverted with a new commit, never by rewriting history."""

from __future__ import annotations

import logging
import re

from mendline.schemas.errors import ForgeError, PatchRefused
from mendline.schemas.fix import Verification, fix_branch, revert_branch
from mendline.sinks.forges._apply import apply_patch, guard_applied
from mendline.sinks.forges._change import ApplyOutcome, Checkout, FixChange, RevertChange
from mendline.sinks.forges._deliver import DeliveryPlan, Parcel, deliver, fetch, tracking_ref
from mendline.sinks.forges._git import Git, tail
from mendline.sinks.forges._render import (
    commit_message,
    pr_body,
    pr_title,
    revert_body,
    revert_message,
    revert_title,
)
from mendline.sinks.forges._verify import VerifyPlan, verify
from mendline.sinks.forges._workspace import Workspace, workspace

__all__ = ["apply_fix", "fetch_base", "release_contains", "revert"]

log = logging.getLogger("mendline.sinks")


async def apply_fix(
    checkout: Checkout, change: FixChange, *, verify_plan: VerifyPlan, delivery: DeliveryPlan
) -> ApplyOutcome:
    """Apply ``change`` on ``mendline/fix-<issue>-<fix>``, a new branch from the base, in a
    worktree under the work root; check it (``guard_applied``: verifying runs it); verify it
    there; commit it; deliver it.

    The user's checkout (its files, index and HEAD) is never touched. Only when it is
    delivered does the branch stay (the worktree goes in any case); a refused patch, failed
    verification or an error leaves the repository as it was. Raises ForgeError when git or
    the forge fails (``retriable`` says whether to try again)."""
    repo = _git(checkout)
    base = await _commit_of(repo, checkout.base, "the base")
    branch = fix_branch(change.issue_id, change.fix_id)
    async with workspace(repo, checkout.work_root, branch, base, new=True) as space:
        try:
            changed = await apply_patch(space.git, change.patch)
            await guard_applied(space.git)  # verification runs the patched code: first
        except PatchRefused as refused:
            return _refused(change.fix_id, refused)
        verification = await verify(space.path, verify_plan, changed)
        if not verification.passed:
            return _failed(change.fix_id, verification)
        commit = await _commit(space, checkout, commit_message(change), change)
        body = pr_body(change, verification, await _diff_of(repo, commit))
        parcel = Parcel(branch, commit, checkout.base, pr_title(change), body)
        delivered = await deliver(repo, delivery, parcel)
        space.keep()
    log.info("fix %s applied on %s, delivered as %s", change.fix_id, branch, delivery.mode)
    return ApplyOutcome("applied", verification=verification, delivery=delivered)


async def revert(
    checkout: Checkout,
    change: RevertChange,
    *,
    delivery: DeliveryPlan,
    verify_plan: VerifyPlan | None = None,
) -> ApplyOutcome:
    """Undo the fix's commit with a revert commit, delivered like a fix.

    A commit the base holds (merged, or its change squashed or rebased in) is reverted on
    ``mendline/revert-<issue>-<fix>``, a new branch from the base: from the remote's base
    as last fetched (``refs/remotes/<remote>/<base>``, ``fetch_base``) when it holds it, a
    pull request merged on the forge, else from the clone's. One not merged yet, on top of
    its own fix branch (pushing it updates its pull request). Verified first when
    ``verify_plan`` is given. Refused (``conflict``) when the code moved on in a way the
    revert does not fit, or (``missing``) when neither the base nor the fix branch holds
    the commit."""
    repo = _git(checkout)
    base = await _commit_of(repo, checkout.base, "the base")
    commit = await _commit_of(repo, change.commit, "the fix's commit")
    merged = await _merged_into(
        repo, commit, base, await tracking_ref(repo, delivery, checkout.base)
    )
    if merged is not None:
        branch, start, new = revert_branch(change.issue_id, change.fix_id), merged, True
    else:
        branch, new = fix_branch(change.issue_id, change.fix_id), False
        start = await _commit_of(repo, f"refs/heads/{branch}", "the fix's branch")
        if not await _is_ancestor(repo, commit, start):
            why = f"neither {checkout.base} nor {branch} holds the commit {commit}"
            return _refused(change.fix_id, PatchRefused("missing", why))
    async with workspace(repo, checkout.work_root, branch, start, new=new) as space:
        try:
            changed = await _revert_in(space, commit)
        except PatchRefused as refused:
            return _refused(change.fix_id, refused)
        verification = None
        if verify_plan is not None:
            verification = await verify(space.path, verify_plan, changed)
            if not verification.passed:
                return _failed(change.fix_id, verification)
        made = await _commit(space, checkout, revert_message(change, commit), change)
        body = revert_body(change, commit, verification, await _diff_of(repo, made))
        # Its own patch file: an unmerged fix's revert is on the fix's branch, whose name
        # the fix's patch file has.
        name = f"{revert_branch(change.issue_id, change.fix_id).replace('/', '-')}-{made[:12]}"
        parcel = Parcel(branch, made, checkout.base, revert_title(change), body, name)
        delivered = await deliver(repo, delivery, parcel)
        space.keep()
    log.info("fix %s reverted on %s, delivered as %s", change.fix_id, branch, delivery.mode)
    return ApplyOutcome("applied", verification=verification, delivery=delivered)


async def fetch_base(checkout: Checkout, delivery: DeliveryPlan) -> bool:
    """Fetch the remote's base branch and its tags into the clone (the delivery's remote,
    its token in git's environment only), so that what was merged or released on the
    forge is seen: ``revert`` and ``release_contains`` read what it brings. False, with
    nothing done, when the clone has no such remote (its fixes are delivered as branches
    or patch files and it has none). Raises ForgeError (``git_failed``, retriable) when
    the fetch fails."""
    return await fetch(_git(checkout), delivery, checkout.base)


async def release_contains(checkout: Checkout, release: str, commit: str) -> bool | None:
    """Whether the release ``release`` holds the fix's ``commit`` (or the same change,
    squashed or rebased in): None when the repository has no tag (or commit id) of that
    name. The release is looked for as a tag named as it is or with a ``v``, for Sentry's
    ``package@version`` also as the version's tag, and as a commit id when it looks like
    one; never as a branch (a release an event names must not be taken for ``main``). The
    clone must have the release's tag: ``fetch_base`` brings the remote's tags."""
    repo = _git(checkout)
    for ref in _release_refs(release):
        found = await repo(
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            f"{ref}^{{commit}}",
            check=False,
        )
        if found.code == 0:
            return await _in_base(repo, commit, found.out.strip())
    return None


_COMMIT_ID = re.compile(r"[0-9a-f]{7,40}")
# What git takes in a tag's name (and nothing that makes a revision expression).
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+/-]{0,199}")


def _release_refs(release: str) -> list[str]:
    """The refs a release may be in the repository, in the order they are tried."""
    version = release.rpartition("@")[2]
    tags = [
        f"refs/tags/{n}"
        for n in dict.fromkeys((release, f"v{release}", version, f"v{version}"))
        if _TAG.fullmatch(n) and ".." not in n and not n.endswith((".lock", "/", "."))
    ]
    ids = [n for n in dict.fromkeys((release, version)) if _COMMIT_ID.fullmatch(n)]
    return tags + ids


def _git(checkout: Checkout) -> Git:
    return Git(checkout.path, program=checkout.git, timeout=checkout.git_timeout)


async def _commit_of(repo: Git, ref: str, what: str) -> str:
    found = await repo(
        "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}", check=False
    )
    if found.code != 0:
        raise ForgeError(
            f"{what} {ref!r} is no commit of the repository at {repo.cwd}",
            code="config",
            retriable=False,
        )
    return found.out.strip()


async def _is_ancestor(repo: Git, commit: str, of: str) -> bool:
    found = await repo("merge-base", "--is-ancestor", commit, of, check=False)
    if found.code not in (0, 1):
        raise ForgeError(
            f"git merge-base failed: {tail(found.err)}", code="git_failed", retriable=True
        )
    return found.code == 0


async def _merged_into(repo: Git, commit: str, base: str, tracked: str | None) -> str | None:
    """The commit of the base that holds ``commit``: the remote's base (``tracked``) when
    it does, else the clone's; None when neither does."""
    for ref in (tracked, base):
        if ref is None:
            continue
        head = await _commit_of(repo, ref, "the base")
        if await _in_base(repo, commit, head):
            return head
    return None


async def _in_base(repo: Git, commit: str, base: str) -> bool:
    """Whether the base holds the commit, or a commit with the same change (squashed,
    rebased or applied from a patch file)."""
    if await _is_ancestor(repo, commit, base):
        return True
    cherry = await repo("cherry", base, commit, f"{commit}^")
    return any(line.startswith("- ") for line in cherry.out.splitlines())


async def _revert_in(space: Workspace, commit: str) -> list[str]:
    reverted = await space.git("revert", "--no-commit", commit, check=False)
    if reverted.code != 0:
        unmerged = (await space.git("diff", "--name-only", "--diff-filter=U")).out.split()
        if unmerged:
            where = ", ".join(unmerged)
            raise PatchRefused(
                "conflict", f"reverting {commit} conflicts with later changes in {where}"
            )
        raise PatchRefused("rejected", f"git revert refuses it: {tail(reverted.err)}")
    changed = (await space.git("diff", "--cached", "--name-only", "--no-renames")).out.split("\n")
    paths = [path for path in changed if path]
    if not paths:
        raise PatchRefused(
            "no_change", f"reverting {commit} changes nothing: is it reverted already?"
        )
    return paths


async def _commit(
    space: Workspace, checkout: Checkout, message: str, change: FixChange | RevertChange
) -> str:
    await space.git(
        *("commit", "--quiet", "--no-verify", "--cleanup=whitespace", "-F", "-"),
        stdin=message.encode(),
        env=checkout.identity(change.when),
    )
    return (await space.git("rev-parse", "HEAD")).out.strip()


async def _diff_of(repo: Git, commit: str) -> str:
    shown = await repo("show", "--format=", "--no-color", "--no-ext-diff", "--no-textconv", commit)
    return shown.out


def _refused(fix_id: int, refused: PatchRefused) -> ApplyOutcome:
    log.info("fix %s refused (%s): %s", fix_id, refused.code, refused)
    return ApplyOutcome("refused", reason=str(refused), code=refused.code)


def _failed(fix_id: int, verification: Verification) -> ApplyOutcome:
    last = verification.commands[-1]
    what = last.ended.replace("exit ", "exited ", 1)
    reason = f"verification failed: {' '.join(last.argv)} {what}"
    log.info("fix %s failed: %s", fix_id, reason)
    return ApplyOutcome(
        "failed", reason=reason, code="verification_failed", verification=verification
    )
