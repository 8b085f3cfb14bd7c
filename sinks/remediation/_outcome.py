"""A remediation's outcome as the runner reports it, its descriptions cut to the contract."""

from __future__ import annotations

import time

from mendline.schemas.remediation import OutcomeResult, RemediationKind, RemediationOutcome

__all__ = ["OUTPUT_LIMIT", "outcome"]

#: The characters of output a run keeps by default: its first and last 32 Ki.
OUTPUT_LIMIT = 64 * 1024


def outcome(
    kind: RemediationKind,
    result: OutcomeResult,
    ran: str,
    detail: str,
    started: float | None,
    *,
    exit_code: int | None = None,
    http_status: int | None = None,
    output: str = "",
) -> RemediationOutcome:
    """The outcome of a run that began at ``started`` (``time.perf_counter()``; None: a dry
    run, which took no time), its descriptions cut to what the contract holds."""
    return RemediationOutcome(
        result=result,
        kind=kind,
        ran=ran[:2000],
        detail=detail[:2000],
        exit_code=exit_code,
        http_status=http_status,
        output=output,
        seconds=0.0 if started is None else time.perf_counter() - started,
    )
