"""What the forges are asked to do and what they answer: the repository, a fix or a revert
to make, and the outcome."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from mendline.schemas.errors import ConfigError
from mendline.schemas.finding import Diagnosis
from mendline.schemas.fix import Delivery, Verification

__all__ = ["ApplyOutcome", "Checkout", "FixChange", "OutcomeResult", "RevertChange"]

_PERSON = re.compile(r"([^<>\n]+?) <([^<>\s]+)>")


@dataclass(frozen=True)
class Checkout:
    """The user's repository (``path``, any worktree of it) and where mendline works on it:
    worktrees go under ``work_root``, which must be outside the repository; branches start
    from ``base`` (a branch, tag or commit). Commits are made by ``author`` ("name
    <email>"); ``git`` is the executable, ``git_timeout`` bounds each git command."""

    path: Path
    work_root: Path
    base: str = "main"
    author: str = "mendline <mendline@localhost>"
    git: str = "git"
    git_timeout: float = 120.0

    def __post_init__(self) -> None:
        path, root = self.path.resolve(), self.work_root.resolve()
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "work_root", root)
        if root == path or root.is_relative_to(path) or path.is_relative_to(root):
            raise ConfigError(
                f"the work root {root} must be outside the repository {path} (and not hold it)"
            )
        if not _PERSON.fullmatch(self.author):
            raise ConfigError(f'the commit author must be "name <email>", not {self.author!r}')

    def identity(self, when: datetime | None) -> dict[str, str]:
        """git's environment for a commit by ``author`` at ``when`` (None: now)."""
        found = _PERSON.fullmatch(self.author)
        assert found is not None  # checked when made
        env = {
            "GIT_AUTHOR_NAME": found[1],
            "GIT_AUTHOR_EMAIL": found[2],
            "GIT_COMMITTER_NAME": found[1],
            "GIT_COMMITTER_EMAIL": found[2],
        }
        if when is not None:
            stamp = f"@{int(when.timestamp())} +0000"
            env |= {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
        return env


@dataclass(frozen=True)
class FixChange:
    """A fix to apply: its ids, its patch (a unified diff, paths relative to the
    repository), and what people read about it (the issue's title, the finding, who
    approved it, the issue's page on mendline). ``when`` dates the commit (the fix's
    approval, say), so that an interrupted attempt made again makes the same commit."""

    issue_id: int
    fix_id: int
    finding_id: int
    patch: str
    issue_title: str
    finding: Diagnosis
    approvers: tuple[str, ...] = ()
    link: str | None = None
    when: datetime | None = None


@dataclass(frozen=True)
class RevertChange:
    """A fix to undo: its ids, its commit, why, who approved the rollback, the issue's page;
    ``when`` dates the revert commit."""

    issue_id: int
    fix_id: int
    commit: str
    reason: str
    issue_title: str
    approvers: tuple[str, ...] = ()
    link: str | None = None
    when: datetime | None = None


#: ``applied``: committed and delivered; ``refused``: the patch (or revert) does not apply
#: where it must (``code`` is a ``PatchRefusal``); ``failed``: verification failed (``code``
#: is ``verification_failed``). After ``refused`` and ``failed`` the repository is as it was.
OutcomeResult = Literal["applied", "refused", "failed"]


@dataclass(frozen=True)
class ApplyOutcome:
    """What applying a fix or a revert came to, with the reason when it was not applied.
    Failures of git or a forge (git missing, a full disk, a forge down) are raised as
    ForgeError instead: they are not the patch's fault and may pass."""

    result: OutcomeResult
    reason: str | None = None
    code: str | None = None
    verification: Verification | None = None
    delivery: Delivery | None = None
