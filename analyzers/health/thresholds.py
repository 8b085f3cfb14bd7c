"""Is this check down? A result moves a check's state: thresholds both ways, flapping, and
maintenance windows that freeze it. Pure: the monitor's store reads the state, calls
``judge`` and writes what it returns, with the alert it asks for, in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from mendline.schemas.checks import CheckState, Transition
from mendline.schemas.duration import format_duration

__all__ = ["Judgement", "judge"]


@dataclass(frozen=True)
class Judgement:
    """The state after a result, what people are told of (``transition``, None: nothing),
    and why, in short sentences."""

    state: CheckState
    transition: Transition | None
    reasons: tuple[str, ...]


def judge(
    state: CheckState,
    success: bool,
    at: datetime,
    *,
    failure_threshold: int,
    success_threshold: int,
    flap_threshold: int,
    flap_window: float,
    in_maintenance: bool = False,
) -> Judgement:
    """The check's state after a result (``success``) at ``at``.

    ``unknown`` becomes ``up`` on its first success (nothing to tell) and ``down`` after
    ``failure_threshold`` failures in a row; ``up`` becomes ``down`` after
    ``failure_threshold`` failures in a row, ``down`` becomes ``up`` after
    ``success_threshold`` successes in a row. In a maintenance window a result does not
    count: the state is frozen and the counts start afresh after it, so a service broken
    during the window is still found down after it.

    A check whose status changed ``flap_threshold`` times within ``flap_window`` seconds is
    flapping: people are told once (``flapping``), its changes are not told while it lasts,
    and once no change happened for ``flap_window`` it settles and its current status is told
    (``down`` or ``recovered``).
    """
    if in_maintenance:
        frozen = replace(state, failures=0, successes=0)
        return Judgement(frozen, None, ("in a maintenance window: not counted",))
    failures = 0 if success else state.failures + 1
    successes = state.successes + 1 if success else 0
    recent = tuple(c for c in state.changes if c > at - timedelta(seconds=flap_window))
    status = state.status
    if (
        state.status != "up"
        and success
        and (state.status == "unknown" or successes >= success_threshold)
    ):
        status = "up"
    elif state.status != "down" and not success and failures >= failure_threshold:
        status = "down"
    if status == state.status:
        after = replace(state, failures=failures, successes=successes, changes=recent)
        if state.flapping and not recent:
            return _settled(after, flap_window)
        return Judgement(after, None, (_counts(status, failures, successes),))
    changes = recent if state.status == "unknown" else (*recent, at)
    after = CheckState(status, at, failures, successes, changes, state.flapping)
    why = _changed(state.status, status, failures, successes)
    if state.flapping:
        return Judgement(after, None, (why, "flapping: not told until it settles"))
    if len(changes) >= flap_threshold:
        flapping = replace(after, flapping=True)
        return Judgement(
            flapping,
            "flapping",
            (why, f"{len(changes)} changes within {_window(flap_window)}: flapping"),
        )
    if state.status == "unknown" and status == "up":
        return Judgement(after, None, (why, "first known state: nothing to tell"))
    return Judgement(after, "down" if status == "down" else "recovered", (why,))


def _settled(state: CheckState, flap_window: float) -> Judgement:
    settled = replace(state, flapping=False)
    why = f"no change within {_window(flap_window)}: settled {state.status}"
    return Judgement(settled, "down" if state.status == "down" else "recovered", (why,))


def _counts(status: str, failures: int, successes: int) -> str:
    if failures:
        return f"{status}: {failures} failure{'s' if failures > 1 else ''} in a row"
    return f"{status}: {successes} success{'es' if successes > 1 else ''} in a row"


def _changed(was: str, now: str, failures: int, successes: int) -> str:
    if now == "down":
        return f"{was} -> down: {failures} failures in a row"
    return f"{was} -> up: {successes} success{'es' if successes > 1 else ''} in a row"


def _window(seconds: float) -> str:
    return format_duration(seconds)
