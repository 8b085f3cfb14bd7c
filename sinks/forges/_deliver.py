"""How a committed fix reaches people: its branch kept, pushed, proposed as a pull (merge)
request, or written as a ``.patch`` file; the remote's base and tags fetched back; a token
only ever in git's environment."""

from __future__ import annotations

import asyncio
import base64
import errno
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from mendline.schemas.errors import ConfigError, ForgeError
from mendline.schemas.fix import Delivery, DeliveryMode
from mendline.sinks.commands import filtered, git_environment
from mendline.sinks.forges._api import ForgeAPI, open_pull_request
from mendline.sinks.forges._git import Git, tail, with_git_setting

log = logging.getLogger("mendline.sinks")

__all__ = ["DeliveryPlan", "Parcel", "deliver", "fetch", "tracking_ref"]


@dataclass(frozen=True)
class DeliveryPlan:
    """How fixes to a repository are delivered (``mode``, a ``DeliveryMode``).

    ``push`` and ``pull_request`` push the branch to ``remote``; with ``push_token`` git
    sends it as ``Authorization: Basic`` (``token_user`` and the token, as GitHub and
    GitLab take a token over HTTPS) through its environment, never its command line.
    ``pull_request`` then opens one on ``forge`` into ``target`` (default: the base, without
    its ``<remote>/``). ``patch`` writes ``git format-patch``'s file into ``patch_dir``."""

    mode: DeliveryMode = "branch"
    remote: str = "origin"
    push_token: str | None = field(default=None, repr=False)
    token_user: str = "x-access-token"
    forge: ForgeAPI | None = None
    target: str | None = None
    patch_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.mode == "pull_request" and self.forge is None:
            raise ConfigError("delivering as a pull request needs the forge's API")
        if self.mode == "patch" and self.patch_dir is None:
            raise ConfigError("delivering as a patch file needs the directory to write it in")
        if not self.remote or self.remote.startswith("-"):
            raise ConfigError(f"not a git remote: {self.remote!r}")

    def target_of(self, base: str) -> str:
        """The branch a pull request goes into, for the base ref ``base``."""
        if self.target:
            return self.target
        return base.removeprefix("refs/heads/").removeprefix(f"{self.remote}/")


@dataclass(frozen=True)
class Parcel:
    """What is delivered: the branch, its commit, the base it came from, and the pull
    request's title and body; ``patch_name``, the name (without ``.patch``) of its patch
    file, is the branch's (``/`` as ``-``) unless given."""

    branch: str
    commit: str
    base: str
    title: str
    body: str
    patch_name: str = ""


async def deliver(repo: Git, plan: DeliveryPlan, parcel: Parcel) -> Delivery:
    """Deliver ``parcel`` as ``plan`` says. If the pull request cannot be opened, a branch
    this push made on the remote is deleted again. Raises ForgeError."""
    delivered = Delivery(mode=plan.mode, branch=parcel.branch, commit=parcel.commit)
    if plan.mode == "branch":
        return delivered
    if plan.mode == "patch":
        assert plan.patch_dir is not None  # checked when planned
        path = await _write_patch(repo, parcel, plan.patch_dir)
        return delivered.model_copy(update={"patch_path": str(path)})
    made = await _push(repo, plan, parcel.branch)
    delivered = delivered.model_copy(update={"remote": plan.remote})
    if plan.mode == "push":
        return delivered
    assert plan.forge is not None  # checked when planned
    try:
        url = await open_pull_request(
            plan.forge,
            head=parcel.branch,
            base=plan.target_of(parcel.base),
            title=parcel.title,
            body=parcel.body,
        )
    except ForgeError:
        if made:
            await _push(repo, plan, f":refs/heads/{parcel.branch}", check=False)
        raise
    return delivered.model_copy(update={"pr_url": url})


def _token_env(plan: DeliveryPlan) -> dict[str, str]:
    if plan.push_token is None:
        return {}
    basic = base64.b64encode(f"{plan.token_user}:{plan.push_token}".encode()).decode()
    return with_git_setting(
        git_environment(os.environ), "http.extraHeader", f"Authorization: Basic {basic}"
    )


_COMMIT_ID = re.compile(r"[0-9a-f]{7,40}")


def _base_branch(plan: DeliveryPlan, base: str) -> str | None:
    """The branch name of the base ref ``base`` on the remote (``main`` for ``main``,
    ``refs/heads/main`` or ``origin/main``); None for a tag or a commit id."""
    if base.startswith("refs/tags/") or _COMMIT_ID.fullmatch(base):
        return None
    for prefix in ("refs/heads/", f"refs/remotes/{plan.remote}/", f"{plan.remote}/"):
        base = base.removeprefix(prefix)
    return base or None


async def tracking_ref(repo: Git, plan: DeliveryPlan, base: str) -> str | None:
    """``refs/remotes/<remote>/<base>`` when the clone has it: where the remote's base was
    when last fetched (what a pull request was merged into). None otherwise."""
    branch = _base_branch(plan, base)
    if branch is None:
        return None
    ref = f"refs/remotes/{plan.remote}/{branch}"
    found = await repo("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    return ref if found.code == 0 else None


async def fetch(repo: Git, plan: DeliveryPlan, base: str) -> bool:
    """Fetch the remote's ``base`` branch (into ``refs/remotes/<remote>/<base>``) and its
    tags into the clone, with the push token (if any) in git's environment. False, with
    nothing done, when the clone has no remote of that name. A tag base (``refs/tags/...``,
    or a name the clone has as a tag and not as a branch) or a commit id fetches the tags
    only. The tags come in a fetch of their own: tags the clone has with other commits are
    never overwritten, and git refusing those (or the tags' fetch failing) is logged, not
    raised, since the others are fetched all the same. Raises ForgeError (``git_failed``,
    retriable) when the branch's fetch fails."""
    if (await repo("remote", "get-url", plan.remote, check=False)).code != 0:
        return False
    branch = _base_branch(plan, base)
    if branch is not None and not await _is_branch(repo, plan, branch):
        branch = None
    if branch is not None:
        spec = f"+refs/heads/{branch}:refs/remotes/{plan.remote}/{branch}"
        await _fetch(repo, plan, spec, f"{branch}", raising=True)
    await _fetch(repo, plan, "refs/tags/*:refs/tags/*", "its tags", raising=False)
    return True


async def _fetch(repo: Git, plan: DeliveryPlan, spec: str, what: str, *, raising: bool) -> None:
    fetched = await repo(
        *("fetch", "--quiet", "--no-recurse-submodules", "--no-tags", plan.remote, spec),
        env=_token_env(plan),
        check=False,
    )
    if fetched.code == 0:
        return
    said = filtered(tail(fetched.err or fetched.out))
    message = f"could not fetch {what} from the remote {plan.remote!r}: {said}"
    if not raising:
        log.warning("mendline: %s", message)
        return
    raise ForgeError(
        message,
        code="git_failed",
        retriable=True,
        hint="mendline fetches to see what was merged and released there: check the"
        " remote's address and the token",
    )


async def _is_branch(repo: Git, plan: DeliveryPlan, name: str) -> bool:
    """Whether ``name`` is a branch of the clone or of the remote (as last fetched), rather
    than only a tag."""
    for ref in (f"refs/heads/{name}", f"refs/remotes/{plan.remote}/{name}"):
        if (await repo("rev-parse", "--verify", "--quiet", ref, check=False)).code == 0:
            return True
    found = await repo("rev-parse", "--verify", "--quiet", f"refs/tags/{name}", check=False)
    return found.code != 0  # neither: it can only be the remote's branch


async def _push(repo: Git, plan: DeliveryPlan, ref: str, *, check: bool = True) -> bool:
    """Push ``ref`` (a branch, or ``:refs/heads/b`` to delete one); True when it made the
    branch on the remote. A refusal (the remote's branch has other commits) is
    ``push_rejected``; other failures ``git_failed`` (retriable)."""
    spec = ref if ref.startswith(":") else f"refs/heads/{ref}:refs/heads/{ref}"
    pushed = await repo("push", "--porcelain", plan.remote, spec, env=_token_env(plan), check=False)
    flags = [
        line[0] for line in pushed.out.splitlines() if line[:2] in {f"{c}\t" for c in " +-*!="}
    ]
    if pushed.code == 0 or not check:
        return "*" in flags
    said = filtered(tail(pushed.err or pushed.out))
    if "!" in flags:
        raise ForgeError(
            f"the remote {plan.remote!r} refused {ref}: {said}",
            code="push_rejected",
            retriable=False,
            hint=f"the remote's {ref} has other commits: look at it, or delete it",
        )
    raise ForgeError(
        f"git push to {plan.remote!r} failed: {said}", code="git_failed", retriable=True
    )


async def _write_patch(repo: Git, parcel: Parcel, directory: Path) -> Path:
    made = await repo("format-patch", "-1", "--stdout", parcel.commit)
    path = directory / ((parcel.patch_name or parcel.branch.replace("/", "-")) + ".patch")
    try:
        await asyncio.to_thread(_write_atomically, path, made.stdout)
    except OSError as exc:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        raise ForgeError(
            f"cannot write {path}: {exc.strerror}",
            code="disk_full" if full else "io_error",
            retriable=full,
        ) from exc
    return path


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
