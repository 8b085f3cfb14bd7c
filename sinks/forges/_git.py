"""git, run in one directory: no shell, no hooks, no prompts, English messages, a timeout;
its failures translated into ForgeError."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mendline.schemas.errors import ForgeError
from mendline.schemas.output import trim_output
from mendline.sinks.commands import OutputCapture, git_environment, run_program

__all__ = ["Git", "GitResult", "tail", "with_git_setting"]

# Hooks are the repository's programs: mendline's commits and worktrees run none (the
# verification commands are what is run, on purpose). Signing would wait for a key.
_SETTINGS = (
    *("-c", "core.hooksPath=/dev/null"),
    *("-c", "commit.gpgSign=false"),
    *("-c", "core.fsmonitor=false"),
)
_OUTPUT_LIMIT = 64 * 1024 * 1024
_ERRORS_LIMIT = 64 * 1024
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
        out, err = _Whole(_OUTPUT_LIMIT), OutputCapture(_ERRORS_LIMIT)
        ran = await run_program(
            [self.program, *_SETTINGS, *args],
            cwd=self.cwd,
            env=environ,
            timeout=self.timeout,
            output=out,
            errors=err,
            stdin=stdin,
        )
        if isinstance(ran.not_started, FileNotFoundError):
            raise ForgeError(
                f"git is not installed (no {self.program!r} on PATH)",
                code="git_missing",
                retriable=False,
                hint="install git where mendline runs",
            ) from ran.not_started
        if ran.not_started is not None:
            raise ForgeError(
                f"git could not start in {self.cwd}: {ran.not_started}",
                code="git_failed",
                retriable=True,
            ) from ran.not_started
        if ran.timed_out or ran.exit_code is None:
            raise ForgeError(
                f"git {args[0]} did not finish in {self.timeout:g} s",
                code="timeout",
                retriable=True,
            )
        if out.over:
            raise ForgeError(
                f"git {args[0]} printed more than {_OUTPUT_LIMIT // 2**20} MiB: not read",
                code="git_failed",
                retriable=False,
            )
        result = GitResult(ran.exit_code, bytes(out.data), err.text())
        if check and result.code != 0:
            raise ForgeError(
                f"git {args[0]} failed (exit {result.code}): {tail(result.err)}",
                code="git_failed",
                retriable=True,
            )
        return result


class _Whole:
    """git's stdout kept whole (a blob, a patch: a cut would spoil it), up to ``limit``
    bytes; past that nothing is kept and ``over`` says so."""

    def __init__(self, limit: int) -> None:
        self.data = bytearray()
        self.over = False
        self._limit = limit

    def feed(self, data: bytes) -> None:
        """Take the next bytes of stdout."""
        if self.over:
            return
        if len(self.data) + len(data) > self._limit:
            self.over = True
            self.data.clear()
            return
        self.data += data


def tail(text: str, limit: int = _MESSAGE_LIMIT) -> str:
    """What git said (``text``), stripped, to ``limit`` characters: its head and tail, where
    git says what went wrong."""
    return trim_output(text.strip(), limit)


def with_git_setting(env: Mapping[str, str], key: str, value: str) -> dict[str, str]:
    """``env`` with one more git setting, given as ``GIT_CONFIG_KEY_<n>``/``VALUE_<n>`` after
    any already there: a secret set so never appears in a command line."""
    raw = env.get("GIT_CONFIG_COUNT", "")
    count = int(raw) if raw.isdigit() else 0
    return {
        **env,
        "GIT_CONFIG_COUNT": str(count + 1),
        f"GIT_CONFIG_KEY_{count}": key,
        f"GIT_CONFIG_VALUE_{count}": value,
    }
