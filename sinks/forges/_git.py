"""git, run in one directory: no shell, no hooks, no prompts, English messages, a timeout;
its failures translated into ForgeError."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mendline.schemas.errors import ForgeError
from mendline.sinks.forges._environment import git_environment
from mendline.sinks.forges._process import run

__all__ = ["Git", "GitResult"]

# Hooks are the repository's programs: mendline's commits and worktrees run none (the
# verification commands are what is run, on purpose). Signing would wait for a key.
_SETTINGS = (
    *("-c", "core.hooksPath=/dev/null"),
    *("-c", "commit.gpgSign=false"),
    *("-c", "core.fsmonitor=false"),
)
_OUTPUT_LIMIT = 64 * 1024 * 1024
_MESSAGE_LIMIT = 600


@dataclass(frozen=True)
class GitResult:
    """What a git command did: its exit code, its stdout (bytes and text) and stderr."""

    code: int
    stdout: bytes
    err: str

    @property
    def out(self) -> str:
        """stdout as text."""
        return self.stdout.decode("utf-8", "replace")


class Git:
    """git in ``cwd``. ``program`` is the git executable; ``timeout`` bounds each command."""

    def __init__(self, cwd: Path, *, program: str = "git", timeout: float = 120.0) -> None:
        self.cwd = cwd
        self.program = program
        self.timeout = timeout

    def at(self, cwd: Path) -> Git:
        """The same git in another directory (a worktree)."""
        return Git(cwd, program=self.program, timeout=self.timeout)

    async def __call__(
        self,
        *args: str,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> GitResult:
        """Run ``git args``; ``env`` adds to git's environment. Raises ForgeError when git
        is missing (``git_missing``), ``cwd`` is not there (``config``), git times out
        (``timeout``) or, with ``check``, exits non-zero (``git_failed``, retriable: a lock
        or a full disk pass)."""
        if not self.cwd.is_dir():
            raise ForgeError(
                f"{self.cwd} is no directory: no repository there",
                code="config",
                retriable=False,
            )
        environ = git_environment(os.environ) | dict(env or {})
        try:
            ran = await run(
                [self.program, *_SETTINGS, *args],
                cwd=self.cwd,
                env=environ,
                timeout=self.timeout,
                limit=_OUTPUT_LIMIT,
                stdin=stdin,
            )
        except FileNotFoundError as exc:
            raise ForgeError(
                f"git is not installed (no {self.program!r} on PATH)",
                code="git_missing",
                retriable=False,
                hint="install git where mendline runs",
            ) from exc
        except OSError as exc:
            raise ForgeError(
                f"git could not start in {self.cwd}: {exc}", code="git_failed", retriable=True
            ) from exc
        if ran.timed_out or ran.exit_code is None:
            raise ForgeError(
                f"git {args[0]} did not finish in {self.timeout:g} s",
                code="timeout",
                retriable=True,
            )
        result = GitResult(ran.exit_code, ran.stdout.bytes(), ran.stderr.text())
        if check and result.code != 0:
            raise ForgeError(
                f"git {args[0]} failed (exit {result.code}): {tail(result.err)}",
                code="git_failed",
                retriable=True,
            )
        return result


def tail(text: str, limit: int = _MESSAGE_LIMIT) -> str:
    """The last ``limit`` characters of ``text``, stripped: where git says what went wrong."""
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]
