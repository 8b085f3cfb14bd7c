"""The demo's fixes: a git repository holding the sample shop's source, a fix policy naming
it (one approver for the demo's fix, nothing leaving the machine), and the fixes the heal
stage proposed, as the demo's summary tells them."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mendline.analyzers.policy import explain
from mendline.cli._fix_view import diff_lines
from mendline.cli.output import Screen, printable
from mendline.schemas.errors import MendlineError
from mendline.schemas.fix import PolicyDecision
from mendline.sinks.commands import git_environment

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "REPOSITORY",
    "SOURCE_ROOT",
    "FixSetup",
    "demo_fix_policy",
    "fix_setup",
    "heal_lines",
    "keep_lines",
    "read_fixes",
    "show_fixes",
]

#: The name of the demo's repository in its fix policy.
REPOSITORY = "shop"
#: Where the repository keeps the shop's source, which the frames name by its module.
SOURCE_ROOT = "src/shop/"
_STACK_ROOT = "mendline.sample_app."
_IDENTITY = {
    "GIT_AUTHOR_NAME": "Shop Developer",
    "GIT_AUTHOR_EMAIL": "dev@shop.invalid",
    "GIT_COMMITTER_NAME": "Shop Developer",
    "GIT_COMMITTER_EMAIL": "dev@shop.invalid",
}


@dataclass(frozen=True)
class FixSetup:
    """Where the demo's fixes go: its repository, the fix policy naming it, and the folder
    the fixes' worktrees are made in (all in the demo's work folder)."""

    repository: Path
    policy_file: Path
    work_root: Path

    @property
    def environ(self) -> dict[str, str]:
        """The settings that point ``mendline fix`` at this policy and work root."""
        return {
            "MENDLINE_FIX_POLICY_FILE": str(self.policy_file),
            "MENDLINE_FIX_WORK_ROOT": str(self.work_root),
        }


def demo_fix_policy(repository: Path) -> str:
    """The demo's fix policy (TOML): the one repository at ``repository``, its fixes
    committed on a branch of it, verified by byte-compiling the changed files; a guard fix
    (the kind of the demo's) needs one approver."""
    python, path = json.dumps(sys.executable), json.dumps(str(repository))
    return f"""\
# mendline demo's fix policy: one repository, a git repository the demo made of the shop's
# source. Nothing leaves the machine: a fix is committed on a branch of that repository.

[auto]
# Applied without a person: style, formatting and import fixes only (as by default). The
# demo's fix is a guard (a missing key read with .get), so one approver must approve it.
kinds = ["style", "formatting", "import"]

[[repositories]]
name = "{REPOSITORY}"
path = {path}
base_branch = "main"
delivery = "branch"  # a local branch: no push, no pull request
verify = [[{python}, "-m", "py_compile", "{{files}}"]]  # the changed Python files
verify_timeout = "1m"

[[repositories.mappings]]
stack_root = "{_STACK_ROOT}"  # the frames' module prefix
source_root = "{SOURCE_ROOT}"
"""


async def fix_setup(workdir: Path) -> FixSetup | None:
    """The demo's repository (the shop's source committed on ``main``) and fix policy in
    ``workdir``; None, with nothing made, when git is not installed."""
    if shutil.which("git") is None:
        return None
    repository = workdir / "shop-repo"
    await asyncio.to_thread(_make_repository, repository)
    policy_file = workdir / "fixes.toml"
    policy_file.write_text(demo_fix_policy(repository))
    return FixSetup(repository, policy_file, workdir / "worktrees")


def _make_repository(repository: Path) -> None:
    source = repository / SOURCE_ROOT
    source.mkdir(parents=True)
    package = resources.files("mendline.sample_app")
    for module in package.iterdir():
        if module.name.endswith(".py"):
            (source / module.name).write_bytes(module.read_bytes())
    (repository / ".gitignore").write_text("__pycache__/\n")
    _git(repository, "init", "--quiet")
    _git(repository, "symbolic-ref", "HEAD", "refs/heads/main")  # whatever git's default
    _git(repository, "add", "--all")
    _git(repository, "commit", "--quiet", "--message", "The shop, release 1.4.2")


def _git(repository: Path, *args: str) -> None:
    """git in ``repository`` as the shop's developer, running no hook and signing nothing."""
    done = subprocess.run(
        ["git", "-c", "core.hooksPath=/dev/null", "-c", "commit.gpgSign=false", *args],
        cwd=repository,
        env=git_environment(os.environ) | _IDENTITY,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise MendlineError(
            f"the demo could not make its git repository: git {args[0]} failed:"
            f" {done.stderr.strip()}",
            hint=f"try it by hand in {repository}",
        )


def heal_lines(setup: FixSetup | None) -> list[str]:
    """What the heal stage does in the demo, as lines of its list of parts."""
    indent = " " * 15
    if setup is None:
        return [f"{indent}heal: no fixes (git is not installed, and fixes are made in git)"]
    return [
        f"{indent}heal: fixes of the shop's source, as the demo's fix policy says, in",
        f"{indent}      the git repository {setup.repository}",
    ]


async def read_fixes(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Every fix of the demo, oldest first, as ``mendline fix show --json`` has it."""
    from mendline.sinks.postgres import FixStore, append_audit

    fixes = await FixStore(pool, append_audit).list(limit=100)
    return [fix.as_json() for fix in reversed(fixes)]


def show_fixes(screen: Screen, fixes: list[dict[str, Any]], setup: FixSetup | None) -> None:
    """The fixes the heal stage proposed: the policy's verdict with its reasons, the patch
    on the repository's paths, and what an approver does next."""
    if setup is None:
        return  # said at the start
    for fix in fixes:
        decision = PolicyDecision.model_validate(fix["decision"])
        waiting = " (awaiting approval)" if fix["state"] == "proposed" else ""
        screen.say(f"\nfix {fix['id']} of issue {fix['issue_id']}: {fix['state']}{waiting}", "bold")
        for line in explain(decision):
            screen.say(f"  {line}")
        screen.say(f"  patch on {printable(str(setup.repository))}:")
        for line in diff_lines(fix["mapped_patch"] or fix["patch"], screen.colour):
            screen.say(f"    {line}")
        if fix["state"] == "proposed" and decision.verdict == "approval":
            screen.say(
                f"  next: an approver approves it, `mendline fix approve {fix['id']}`, and"
                f" applies it, `mendline fix apply {fix['id']}`"
            )


def keep_lines(
    fixes: list[dict[str, Any]], setup: FixSetup, shown_environ: dict[str, str]
) -> list[str]:
    """With --keep: how to approve and apply the fixes awaiting approval, on the demo's
    database, policy and work root (as the local OS user, with ``MENDLINE_LOCAL_ROLE``).
    The embedded database is named with the file holding its password; an external one is
    the user's ``MENDLINE_DATABASE_URL`` already (shown, its password is redacted)."""
    waiting = [fix["id"] for fix in fixes if fix["state"] == "proposed"]
    if not waiting:
        return []
    environ = {}
    if "PGPASSFILE" in shown_environ:
        environ = {name: shown_environ[name] for name in ("MENDLINE_DATABASE_URL", "PGPASSFILE")}
    environ |= setup.environ
    exports = " ".join(f"{name}={shlex.quote(value)}" for name, value in environ.items())
    first = waiting[0]
    return [
        "approve the proposed fix with",
        f"  export {exports}",
        f"  mendline fix show {first}",
        f"  mendline fix approve {first}",
        "and the demo's heal stage applies it within a second or two, verified and committed on"
        f" a branch (`mendline fix show {first}` says which); where no heal stage runs,"
        f" `mendline fix apply {first}` applies an approved fix at once",
    ]
