"""Worktrees of mendline's own, under a work root outside the user's checkout: made on a
branch, removed whatever happens, and what a crash left behind cleaned up."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from mendline.schemas.errors import ForgeError, MendlineError
from mendline.sinks.forges._git import Git

__all__ = ["CleanupReport", "Workspace", "cleanup_stale", "workspace", "worktree_dir"]

log = logging.getLogger("mendline.sinks")

#: The only branches mendline makes, moves or deletes.
_BRANCH = re.compile(r"mendline/(?:fix|revert)-\d+-\d+")
_DIR = re.compile(r"mendline-(?:fix|revert)-\d+-\d+")


def worktree_dir(work_root: Path, branch: str) -> Path:
    """Where the worktree of ``branch`` goes: ``<work_root>/mendline-fix-<issue>-<fix>``."""
    return work_root / branch.replace("/", "-")


def _branch_of(directory: str) -> str:
    return directory.replace("-", "/", 1)


@dataclass
class Workspace:
    """A worktree on ``branch``, with git run in it. ``tip`` is where an existing branch
    pointed before (None for a branch made for it)."""

    path: Path
    branch: str
    git: Git
    tip: str | None
    kept: bool = False

    def keep(self) -> None:
        """Keep the branch (and what was committed on it) when the worktree goes."""
        self.kept = True


@asynccontextmanager
async def workspace(
    repo: Git, work_root: Path, branch: str, start: str, *, new: bool
) -> AsyncIterator[Workspace]:
    """A worktree under ``work_root`` on ``branch``: a new branch from commit ``start``
    (``new``; one left by an interrupted attempt is replaced), or the existing branch.

    When the block ends the worktree is removed, even on cancellation. Unless ``keep()`` was
    called, a new branch is deleted and an existing one is put back where it was: the
    repository is left as it was found."""
    if not _BRANCH.fullmatch(branch):
        raise ValueError(f"not a branch of mendline's: {branch!r}")
    path = worktree_dir(work_root, branch)
    try:
        await asyncio.to_thread(work_root.mkdir, parents=True, exist_ok=True)
    except OSError as exc:
        raise ForgeError(
            f"cannot make the work root {work_root}: {exc}", code="config", retriable=False
        ) from exc
    await _remove_worktree(repo, path)
    tip = None
    if new:
        await _delete_branch(repo, branch)
    else:
        tip = (await repo("rev-parse", "--verify", f"refs/heads/{branch}")).out.strip()
    space = Workspace(path, branch, repo.at(path), tip)
    try:
        if new:
            await repo("worktree", "add", "--no-track", "-b", branch, str(path), start)
        else:
            await repo("worktree", "add", str(path), branch)
        yield space
    finally:
        await _shielded(_close(repo, space))


async def _close(repo: Git, space: Workspace) -> None:
    try:
        await _remove_worktree(repo, space.path)
        if space.kept:
            return
        if space.tip is None:
            await _delete_branch(repo, space.branch)
        else:
            await repo("update-ref", f"refs/heads/{space.branch}", space.tip)
    except MendlineError as exc:  # cleanup_stale finishes it; the caller's outcome stands
        log.warning("could not clean up the worktree %s: %s", space.path, exc)


async def _shielded(cleanup: Awaitable[None]) -> None:
    # A cancelled caller still gets its worktree removed: the cleanup runs to its end.
    await asyncio.shield(asyncio.ensure_future(cleanup))


async def _remove_worktree(repo: Git, path: Path) -> None:
    """Remove mendline's worktree at ``path``: its folder and git's record of it, and no
    other (never ``git worktree prune``, which would drop the user's own worktrees whose
    folders are missing for now: an unmounted disk, say)."""
    removed = await repo("worktree", "remove", "--force", "--force", str(path), check=False)
    await asyncio.to_thread(_remove_dir, path)
    if removed.code != 0:  # a folder git could not remove: its record goes now it is gone
        await repo("worktree", "remove", "--force", "--force", str(path), check=False)


def _remove_dir(path: Path) -> None:
    if path.is_symlink():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


async def _delete_branch(repo: Git, branch: str) -> None:
    ref = f"refs/heads/{branch}"
    if (await repo("rev-parse", "--verify", "--quiet", ref, check=False)).code == 0:
        await repo("branch", "-D", branch)


@dataclass(frozen=True)
class CleanupReport:
    """What ``cleanup_stale`` removed: worktree directories and branches."""

    worktrees: tuple[str, ...] = ()
    branches: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Listed:
    path: Path
    branch: str | None


async def _worktrees(repo: Git) -> list[_Listed]:
    listed: list[_Listed] = []
    for record in (await repo("worktree", "list", "--porcelain")).out.split("\n\n"):
        fields = dict(line.partition(" ")[::2] for line in record.splitlines())
        if "worktree" in fields:
            branch = fields.get("branch")
            listed.append(
                _Listed(Path(fields["worktree"]), branch and branch[len("refs/heads/") :])
            )
    return listed


async def cleanup_stale(
    repo_path: Path, work_root: Path, keep: Iterable[str], *, git: str = "git"
) -> CleanupReport:
    """Remove what interrupted work (a kill -9) left: the repository's mendline worktrees
    under ``work_root`` and its ``mendline/fix-*`` and ``mendline/revert-*`` branches,
    except those of the branches in ``keep`` (every live fix's, of any repository: fix ids
    are global).

    Other repositories may share the work root: a folder there is removed only when its
    ``.git`` link points into this repository (its worktree, or one git has forgotten).
    Never a branch not named ``mendline/...``, never one checked out in a worktree that is
    not mendline's, never the user's checkout or worktrees (no ``git worktree prune``)."""
    repo = Git(repo_path, program=git)
    kept = set(keep)
    root = await asyncio.to_thread(work_root.resolve)
    records = await _records_dir(repo)
    trees: list[str] = []
    for entry in (await _worktrees(repo))[1:]:  # the first is the main worktree
        name = entry.path.name
        if entry.path.parent == root and _DIR.fullmatch(name) and _branch_of(name) not in kept:
            await _remove_worktree(repo, entry.path)
            trees.append(str(entry.path))
    for child in await asyncio.to_thread(_stale_dirs, root, kept, records):
        await _remove_worktree(repo, child)  # a worktree of this repository git forgot
        trees.append(str(child))
    return CleanupReport(tuple(trees), tuple(await _delete_stale_branches(repo, kept)))


async def _records_dir(repo: Git) -> Path:
    """Where git keeps the repository's records of its worktrees (``.git/worktrees``)."""
    common = (await repo("rev-parse", "--path-format=absolute", "--git-common-dir")).out
    return await asyncio.to_thread(lambda: (Path(common.strip()) / "worktrees").resolve())


def _stale_dirs(root: Path, kept: set[str], records: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return [
        child
        for child in sorted(root.iterdir())
        if _DIR.fullmatch(child.name)
        and _branch_of(child.name) not in kept
        and _linked_into(child, records)
    ]


def _linked_into(folder: Path, records: Path) -> bool:
    """Whether the worktree ``folder``'s ``.git`` file points into ``records`` (one
    repository's worktree records). A folder without one is left alone: it may be another
    repository's, being made right now."""
    link = folder / ".git"
    try:
        if link.is_symlink() or not link.is_file():
            return False
        text = link.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    first = text.partition("\n")[0]
    if not first.startswith("gitdir: "):
        return False
    target = Path(first.removeprefix("gitdir: ").strip())
    return (folder / target).resolve().parent == records


async def _delete_stale_branches(repo: Git, kept: set[str]) -> list[str]:
    busy = {entry.branch for entry in await _worktrees(repo)}
    refs = await repo("for-each-ref", "--format=%(refname)", "refs/heads/mendline/")
    deleted = []
    for ref in refs.out.split():
        branch = ref.removeprefix("refs/heads/")
        if _BRANCH.fullmatch(branch) and branch not in kept and branch not in busy:
            await repo("branch", "-D", branch)
            deleted.append(branch)
    return deleted
