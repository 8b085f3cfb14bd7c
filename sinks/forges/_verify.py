"""A fix verified in its worktree: the repository's commands (by default: byte-compile the
changed Python files, ruff them when ruff is there, then the test command), each with a
timeout and an output limit, without a shell, and with no secret in their environment."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mendline.schemas.fix import CommandOutcome, Verification
from mendline.sinks.commands import OutputCapture, command_environment, filtered, run_program

__all__ = ["FILES", "VerifyPlan", "verify"]

#: In a command, the argument replaced by the changed Python files (``./path`` each).
FILES = "{files}"


@dataclass(frozen=True)
class VerifyPlan:
    """How fixes to a repository are verified.

    ``checks`` replace the default checks (byte-compiling the changed Python files with
    ``python``, then ``ruff check`` on them when ruff is on the PATH); an argument equal to
    ``FILES`` stands for the changed Python files, and a command with it is skipped when no
    Python file changed. ``test_command`` runs last, when set. Each command gets ``timeout``
    seconds and keeps ``output_limit`` characters of its output (its head and tail).
    ``secret_env`` names variables the commands never get (a forge's token, a remediation's
    header), whatever their names and values look like; their values are cut from the
    output too."""

    checks: tuple[tuple[str, ...], ...] | None = None
    test_command: tuple[str, ...] | None = None
    timeout: float = 600.0
    output_limit: int = 20_000
    python: str = sys.executable
    secret_env: frozenset[str] = frozenset()

    def commands(self, changed: list[str], path: str | None) -> list[list[str]]:
        """The commands to run, in order, for the ``changed`` files; ``path`` is the PATH
        ruff is looked for on."""
        files = [f"./{name}" for name in changed if name.endswith(".py")]
        checks = self.checks
        if checks is None:
            checks = ((self.python, "-m", "py_compile", FILES),)
            ruff = shutil.which("ruff", path=path)
            if ruff:
                checks += ((ruff, "check", "--no-cache", FILES),)
        commands: list[list[str]] = []
        for argv in (*checks, *([self.test_command] if self.test_command else [])):
            if FILES in argv and not files:
                continue
            commands.append([part for arg in argv for part in (files if arg == FILES else [arg])])
        return commands


async def verify(
    worktree: Path,
    plan: VerifyPlan,
    changed: list[str],
    environ: Mapping[str, str] = os.environ,
) -> Verification:
    """Run ``plan``'s commands in ``worktree`` until one fails; passed when all exit 0.

    Their environment is ``environ`` without mendline's settings, any secret
    (``command_environment``) or the plan's ``secret_env``, ``PWD`` the worktree; their
    output (stdout and stderr) is cut to its head and tail and its secrets filtered."""
    kept = {k: v for k, v in environ.items() if k not in plan.secret_env}
    env = command_environment(kept) | {"PWD": str(worktree)}
    secrets = sorted({environ[k] for k in plan.secret_env if environ.get(k)}, key=len)[::-1]
    outcomes: list[CommandOutcome] = []
    for argv in plan.commands(changed, env.get("PATH")):
        outcome = await _run_one(argv, worktree, env, plan, secrets)
        outcomes.append(outcome)
        if outcome.exit_code != 0:
            return Verification(passed=False, commands=outcomes)
    return Verification(passed=True, commands=outcomes)


async def _run_one(
    argv: list[str], worktree: Path, env: dict[str, str], plan: VerifyPlan, secrets: list[str]
) -> CommandOutcome:
    capture = OutputCapture(plan.output_limit)
    ran = await run_program(argv, cwd=worktree, env=env, timeout=plan.timeout, output=capture)
    if ran.not_started is not None:
        said = filtered(f"cannot run: {ran.not_started}", secrets)
        return CommandOutcome(argv=argv, exit_code=None, seconds=0, output=said)
    return CommandOutcome(
        argv=argv,
        exit_code=ran.exit_code,
        timed_out=ran.timed_out,
        seconds=round(ran.seconds, 3),
        output=capture.text(secrets),
    )
