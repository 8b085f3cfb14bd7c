"""Remediation runs: what running one did (``RemediationOutcome``) and a run as stored
(``RemediationRun``), the contract between the runner, the remediation store and the CLI.

A run's life (``RUN_TRANSITIONS``)::

    requested -> approved | refused
    approved -> running | refused
    running -> succeeded | failed | timed_out | dry_run
    succeeded | failed | timed_out -> not_helped      (the check, run again, still failed)

A run that policy lets go without a person is stored ``approved`` at once; one it refuses
(a cooldown, too many runs this hour) is stored ``refused`` at once, with the reasons. Only
one run per target is ``running`` at a time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mendline.schemas.fixpolicy import RemediationVerdict
from mendline.schemas.transitions import check_move

__all__ = [
    "FINAL_RUN_STATES",
    "RUN_STATES",
    "RUN_TRANSITIONS",
    "OutcomeResult",
    "RemediationKind",
    "RemediationOutcome",
    "RemediationRun",
    "RunState",
    "check_run_transition",
    "finished_state",
]

#: How a run ended: it did what it should (exit status 0, an HTTP 2xx), it did not (another
#: status, no answer, it could not start), it ran out of time (and was killed), or it was a
#: dry run that ran nothing.
OutcomeResult = Literal["ok", "failed", "timed_out", "dry_run"]
#: What a remediation does: run a command (an argv list, never a shell) or call an HTTP API.
RemediationKind = Literal["command", "http"]

RunState = Literal[
    "requested",
    "approved",
    "running",
    "succeeded",
    "failed",
    "timed_out",
    "dry_run",
    "refused",
    "not_helped",
]
#: Every state, in the order of a run's life.
RUN_STATES: tuple[RunState, ...] = RunState.__args__  # type: ignore[attr-defined]

#: The states each state may move to; anything else is an illegal transition.
RUN_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    "requested": frozenset({"approved", "refused"}),
    "approved": frozenset({"running", "refused"}),
    "running": frozenset({"succeeded", "failed", "timed_out", "dry_run"}),
    "succeeded": frozenset({"not_helped"}),
    "failed": frozenset({"not_helped"}),
    "timed_out": frozenset({"not_helped"}),
    "dry_run": frozenset(),
    "refused": frozenset(),
    "not_helped": frozenset(),
}
#: States a run never leaves.
FINAL_RUN_STATES: frozenset[RunState] = frozenset(
    s for s, nxt in RUN_TRANSITIONS.items() if not nxt
)

_FINISHED: dict[OutcomeResult, RunState] = {
    "ok": "succeeded",
    "failed": "failed",
    "timed_out": "timed_out",
    "dry_run": "dry_run",
}


def check_run_transition(current: RunState, wanted: RunState) -> None:
    """Return when a run in state ``current`` may move to ``wanted``; else raise
    IllegalTransition, which names both and what ``current`` may become."""
    check_move(RUN_TRANSITIONS, current, wanted, "a remediation run")


def finished_state(result: OutcomeResult) -> RunState:
    """The state a running run ends in with an outcome of ``result``."""
    return _FINISHED[result]


class RemediationOutcome(BaseModel):
    """What one run of a remediation did (or, for a dry run, would have done)."""

    model_config = ConfigDict(frozen=True)

    result: OutcomeResult
    kind: RemediationKind
    #: What ran, for people: the command line (shell-quoted) or "POST http://host/path"
    #: (the URL's secrets filtered; header values never).
    ran: str = Field(max_length=2000)
    #: One sentence: "exited with status 1", "answered 503", "did not finish in 30 s: its
    #: process group was killed", "dry run: nothing was run".
    detail: str = Field(max_length=2000)
    #: The command's exit status (None: killed, or it could not start; or an HTTP call).
    exit_code: int | None = None
    #: The HTTP answer's status (None: no answer, or a command).
    http_status: int | None = None
    #: stdout and stderr together (a command) or the answer's body (HTTP), secrets filtered,
    #: trimmed to the runner's limit (its head and tail, see ``mendline.schemas.output``).
    output: str = ""
    seconds: float = Field(ge=0)


class RemediationRun(BaseModel):
    """A remediation run as stored: what asked for it, who let it go, what it did, and
    whether it helped."""

    model_config = ConfigDict(frozen=True)

    id: int
    #: The remediation's name in the policy file.
    name: str
    #: What it acts on, one run at a time: the policy's ``target``, else the remediation's
    #: name ("orders-worker").
    target: str
    state: RunState
    #: What asked for it, for people: "check api is down", "issue 12 matched team=payments".
    trigger: str
    #: Why it was let go, held for approval or refused (the policy decision's reasons).
    reasons: list[str] = Field(default_factory=list)
    requested_by: str
    requested_at: datetime
    approved_by: str | None = None
    approved_at: datetime | None = None
    #: The worker that started it ("monitor host:pid").
    owner: str | None = None
    started_at: datetime | None = None
    #: Until when its target's slot is its own; a start after that takes the slot over.
    lease_until: datetime | None = None
    finished_at: datetime | None = None
    outcome: RemediationOutcome | None = None
    #: Whether the check, run again afterwards, passed (None: not verified yet).
    verified: bool | None = None
    #: When people were alerted because it did not help.
    escalated_at: datetime | None = None
    #: What asked for it: "check:api" (a check down), "issue:12" (an issue that matched);
    #: None for a run asked for otherwise.
    subject: str | None = None
    #: The subject's down period it belongs to: when the check went down, when the issue
    #: opened or last regressed.
    episode_at: datetime | None = None
    #: What policy said when it was asked for: ``run`` (let go without a person),
    #: ``needs_approval`` (a person was asked) or ``refused`` (a guardrail held it back).
    verdict: RemediationVerdict | None = None
