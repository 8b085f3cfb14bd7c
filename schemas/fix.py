"""Fixes: a finding's patch on its way to production, the contract between the fix policy,
the forges (git worktrees, pull requests), the fix store, the heal stage and the CLI.

A fix is made from a finding that has a ``fix_patch``. Its life (``TRANSITIONS``)::

    proposed -> approved | rejected
    proposed | approved -> applying -> applied | failed   (applying -> proposed: given back)
    applied -> deployed -> verified | regressed
    applied | deployed | verified | regressed -> rolled_back

``proposed -> applying`` is the policy's automatic path (no person needed); ``applying ->
proposed`` gives a fix back when the policy, asked again as it is applied, now wants a person
(more approvals, or ``[auto] max_per_hour`` spent). ``applying`` is
claimed with a lease: a worker killed mid-apply leaves it to be claimed again (``attempts``
counts), never half-applied. ``failed``, ``rejected`` and ``rolled_back`` are final; a new
fix can be made from the finding again.

What the policy decided (``PolicyDecision``) is stored with its reasons; so is what applying
and verifying did (``Verification``, ``Delivery``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mendline.schemas.transitions import check_move

__all__ = [
    "FINAL_STATES",
    "FIX_STATES",
    "FIX_STEPS",
    "TRANSITIONS",
    "CommandOutcome",
    "Delivery",
    "DeliveryMode",
    "FixState",
    "PolicyDecision",
    "PolicyVerdict",
    "Verification",
    "check_transition",
    "fix_branch",
    "revert_branch",
]

FixState = Literal[
    "proposed",
    "approved",
    "rejected",
    "applying",
    "applied",
    "failed",
    "deployed",
    "verified",
    "regressed",
    "rolled_back",
]
#: Every state, in the order of a fix's life.
FIX_STATES: tuple[FixState, ...] = FixState.__args__  # type: ignore[attr-defined]

#: The states each state may move to; anything else is an illegal transition.
TRANSITIONS: dict[FixState, frozenset[FixState]] = {
    "proposed": frozenset({"approved", "rejected", "applying"}),
    "approved": frozenset({"applying", "rejected"}),
    "rejected": frozenset(),
    "applying": frozenset({"applied", "failed", "proposed"}),
    "applied": frozenset({"deployed", "rolled_back"}),
    "failed": frozenset(),
    "deployed": frozenset({"verified", "regressed", "rolled_back"}),
    "verified": frozenset({"rolled_back"}),
    "regressed": frozenset({"rolled_back"}),
    "rolled_back": frozenset(),
}
#: States a fix never leaves.
FINAL_STATES: frozenset[FixState] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)

#: The steps of a fix's life, in order, as people are shown them: (the stored fix's field
#: holding when it happened, how it is said).
FIX_STEPS: tuple[tuple[str, str], ...] = (
    ("created_at", "proposed"),
    ("approved_at", "approved"),
    ("rejected_at", "rejected"),
    ("applying_since", "applying"),
    ("applied_at", "applied"),
    ("failed_at", "failed"),
    ("deployed_at", "deployed"),
    ("verified_at", "verified"),
    ("regressed_at", "regressed"),
    ("rolled_back_at", "rolled back"),
)

#: What the policy says of a fix: applied without a person (``auto``), only once approved
#: (``approval``, by ``approvals_needed`` people; with 2, the requester cannot approve alone),
#: or never (``deny``).
PolicyVerdict = Literal["auto", "approval", "deny"]

#: How an applied fix reaches people: the commit on a local branch of the repository
#: (``branch``), that branch pushed to the remote (``push``), a pull/merge request opened on
#: the forge (``pull_request``), or a ``.patch`` file to apply by hand (``patch``).
DeliveryMode = Literal["branch", "push", "pull_request", "patch"]


def check_transition(current: FixState, wanted: FixState) -> None:
    """Return when a fix in state ``current`` may move to ``wanted``; else raise
    IllegalTransition, which names both and the states ``current`` may move to. The one place
    the fix store asks before it moves a fix."""
    check_move(TRANSITIONS, current, wanted, "a fix")


def fix_branch(issue_id: int, fix_id: int) -> str:
    """The branch a fix is committed on: ``mendline/fix-<issue>-<fix>``."""
    return f"mendline/fix-{issue_id}-{fix_id}"


def revert_branch(issue_id: int, fix_id: int) -> str:
    """The branch that reverts a fix already in the base: ``mendline/revert-<issue>-<fix>``
    (a fix not merged yet is reverted on its own branch)."""
    return f"mendline/revert-{issue_id}-{fix_id}"


class PolicyDecision(BaseModel):
    """The fix policy's verdict on a fix, with every reason that led to it (the rules that
    allowed, asked for a person, or denied), for the CLI, the dashboard and the audit row."""

    model_config = ConfigDict(frozen=True)

    verdict: PolicyVerdict
    reasons: list[str] = Field(default_factory=list)
    #: People who must approve (0 for ``auto`` and ``deny``; 1 or 2 for ``approval``: with 2,
    #: two distinct approvers, of whom the fix's requester may be at most one).
    approvals_needed: int = Field(default=0, ge=0, le=2)
    #: The repository the patch maps to (its name in the policy file), when it maps.
    repository: str | None = None
    #: The patch with its paths rewritten from frame paths to repository paths.
    mapped_patch: str | None = None


class CommandOutcome(BaseModel):
    """One verification command as it ran in the worktree."""

    model_config = ConfigDict(frozen=True)

    argv: list[str]
    exit_code: int | None = Field(description="None when it timed out or could not start.")
    timed_out: bool = False
    seconds: float = Field(ge=0)
    #: stdout and stderr together, trimmed to the configured limit (its head and tail).
    output: str = ""

    @property
    def ended(self) -> str:
        """How it ended, in words: ``timed out``, ``could not start`` or ``exit N``."""
        if self.timed_out:
            return "timed out"
        if self.exit_code is None:
            return "could not start"
        return f"exit {self.exit_code}"


class Verification(BaseModel):
    """What verifying a patch in its worktree did: each command, and whether all passed."""

    model_config = ConfigDict(frozen=True)

    passed: bool
    commands: list[CommandOutcome] = Field(default_factory=list)


class Delivery(BaseModel):
    """Where an applied (or rolled back) fix is: its branch and commit, and by mode the
    pushed remote, the pull request's URL or the patch file's path."""

    model_config = ConfigDict(frozen=True)

    mode: DeliveryMode
    branch: str
    commit: str = Field(pattern=r"^[0-9a-f]{40}$")
    remote: str | None = None
    pr_url: str | None = None
    patch_path: str | None = None
