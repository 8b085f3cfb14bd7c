"""A remediation's command: an argv list run without a shell, in a process group of its own
that is stopped whole on timeout, with an environment that holds none of mendline's
settings or secrets (``mendline.sinks.commands`` runs it)."""

from __future__ import annotations

import os
import shlex
import signal
import time
from collections.abc import Mapping, Sequence

from mendline.schemas.remediation import OutcomeResult, RemediationOutcome
from mendline.sinks.commands import OutputCapture, command_environment, filtered, run_program
from mendline.sinks.remediation._outcome import OUTPUT_LIMIT, outcome

__all__ = ["run_command"]


async def run_command(
    argv: Sequence[str],
    timeout: float,
    output_limit: int = OUTPUT_LIMIT,
    env: Mapping[str, str] | None = None,
    *,
    dry_run: bool = False,
) -> RemediationOutcome:
    """Run ``argv`` (no shell: the first item is the program, found on the ``PATH`` of the
    environment) and return what it did.

    The environment is ``env`` (default: this process's) through ``command_environment``;
    stdin is empty; stdout and stderr are kept together, their head and tail up to
    ``output_limit`` characters, secrets filtered. The command runs in a new session (its
    own process group): after ``timeout`` seconds the whole group gets SIGTERM, then SIGKILL
    ``KILL_GRACE`` seconds later, and the outcome is ``timed_out``. Exit status 0 is ``ok``;
    another status, death by a signal, or a program that cannot start is ``failed``.
    Cancelled, it stops the group the same way and re-raises. ``dry_run``: nothing runs;
    the outcome says what would have."""
    if not argv:
        raise ValueError("a remediation command needs at least a program")
    ran = filtered(shlex.join(argv))
    if dry_run:
        return outcome("command", "dry_run", ran, f"dry run: would run {ran}", None)
    environment = command_environment(os.environ if env is None else env)
    capture = OutputCapture(output_limit)
    started = time.perf_counter()
    run = await run_program(argv, env=environment, timeout=timeout, output=capture)
    if run.not_started is not None:
        reason = run.not_started.strerror or type(run.not_started).__name__
        return outcome("command", "failed", ran, f"could not start {argv[0]}: {reason}", started)
    output = capture.text()
    if run.exit_code is None:
        detail = (
            f"did not finish in {timeout:g} s: its process group was stopped"
            " (SIGTERM, then SIGKILL)"
        )
        return outcome("command", "timed_out", ran, detail, started, output=output)
    detail = _exit_detail(run.exit_code)
    if run.left_open:
        detail += "; a process it left behind kept its output open (not waited for)"
    result: OutcomeResult = "ok" if run.exit_code == 0 else "failed"
    return outcome("command", result, ran, detail, started, exit_code=run.exit_code, output=output)


def _exit_detail(code: int) -> str:
    if code >= 0:
        return f"exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"was killed by {name}"
