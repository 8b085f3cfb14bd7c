"""A check's result from what its probe saw, or from a heartbeat's verdict: pure."""

from __future__ import annotations

from datetime import datetime

from mendline.analyzers.health.conditions import default_conditions, evaluate
from mendline.analyzers.health.heartbeat import HeartbeatVerdict
from mendline.schemas.checks import Check, CheckResult, HeartbeatCheck, Observation

__all__ = ["heartbeat_result", "probe_result"]


def probe_result(
    check: Check,
    scheduled_at: datetime,
    started_at: datetime,
    duration: float,
    observation: Observation,
) -> CheckResult:
    """The result of one run: every condition of the check (its own, its shortcuts, or its
    kind's default) over ``observation``; a success when all hold. A check that could not run
    here (``config``: a variable it names is unset) fails whatever its conditions say."""
    conditions = evaluate(default_conditions(check), observation)
    held = all(c.success for c in conditions) and observation.error_kind != "config"
    return CheckResult(
        check=check.name,
        kind=check.kind,
        scheduled_at=scheduled_at,
        started_at=started_at,
        duration=max(duration, 0.0),
        success=held,
        conditions=conditions,
        timings=dict(observation.timings),
        error=observation.error,
        error_kind=observation.error_kind,
    )


def heartbeat_result(check: HeartbeatCheck, verdict: HeartbeatVerdict) -> CheckResult:
    """A heartbeat slot's verdict as a result of the check at that slot; the run time, when
    measured, is its duration."""
    return CheckResult(
        check=check.name,
        kind="heartbeat",
        scheduled_at=verdict.slot,
        started_at=verdict.slot,
        duration=verdict.runtime or 0.0,
        success=verdict.success,
        timings={"total": verdict.runtime} if verdict.runtime is not None else {},
        error=verdict.error,
        error_kind=verdict.error_kind,
    )
