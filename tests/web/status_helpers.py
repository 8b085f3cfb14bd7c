"""Seeding the status pages' data the way the stages write it: health results recorded through
HealthStore as the monitor stage records them (maintenance decided by the check's windows),
alert deliveries routed, claimed and settled through AlertStore as the alert stage does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import TypeAdapter

from mendline.analyzers.health import active_window
from mendline.schemas.checks import Check, CheckResult
from mendline.schemas.fix import PolicyDecision
from mendline.schemas.people import SYSTEM_ACTOR
from mendline.sinks.postgres import (
    AlertStore,
    Delivered,
    DueDelivery,
    FindingStore,
    FixStore,
    GiveUp,
    HealthStore,
    Mark,
    RecordOutcome,
    Retry,
    append_audit,
)
from mendline.sinks.routing import load_routes
from tests.db_helpers import patch_finding

HOSTILE = "<script>alert(1)</script>"
CHECK: TypeAdapter[Check] = TypeAdapter(Check)
#: Yesterday at noon (UTC): results in the past, so the database's clock finds them due.
T0 = (datetime.now(UTC) - timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)


def http_check(name: str, **fields: Any) -> Check:
    """An HTTP check every minute, down after one failure, up after one success."""
    definition = {
        "kind": "http",
        "url": f"https://{name}.example.com/health",
        "interval": 60,
        "failure_threshold": 1,
        "success_threshold": 1,
    }
    return CHECK.validate_python({"name": name, **definition, **fields})


def heartbeat_check(name: str, **fields: Any) -> Check:
    """A heartbeat expected every hour."""
    return CHECK.validate_python({"name": name, "kind": "heartbeat", "every": "1h", **fields})


def probe_result(
    check: Check,
    at: datetime,
    success: bool,
    *,
    response: float = 0.05,
    observed: str | None = None,
    error: str | None = None,
    error_kind: str | None = None,
    condition: str = "[STATUS] == 200",
) -> CheckResult:
    """A result of ``check`` at slot ``at``: its ``condition`` read ``observed``."""
    return CheckResult.model_validate(
        {
            "check": check.name,
            "kind": check.kind,
            "scheduled_at": at,
            "started_at": at,
            "duration": response,
            "success": success,
            "conditions": [
                {
                    "condition": condition,
                    "success": success,
                    "observed": observed or ("200" if success else "503"),
                }
            ],
            "timings": {} if error_kind else {"total": response},
            "error": error,
            "error_kind": error_kind,
        }
    )


async def record(store: HealthStore, check: Check, result: CheckResult) -> RecordOutcome:
    """Record ``result`` as the monitor stage does: in maintenance when a window is open."""
    in_maintenance = active_window(check.maintenance, result.scheduled_at) is not None
    return await store.record(result, check, "monitor-test", in_maintenance=in_maintenance)


async def run_marks(
    store: HealthStore,
    check: Check,
    marks: str,
    start: datetime = T0,
    *,
    responses: Sequence[float] | None = None,
) -> None:
    """Record one result per interval from ``start``: '+' success, '-' failure; each taking
    ``responses[i]`` seconds (50 ms when not given)."""
    for i, mark in enumerate(marks):
        at = start + timedelta(seconds=i * check.interval)
        response = responses[i] if responses is not None else 0.05
        await record(store, check, probe_result(check, at, mark == "+", response=response))


ROUTES = """
[receivers.team]
type = "slack"
webhook_url_env = "STATUS_TEST_HOOK"

[receivers."{hostile}"]
type = "slack"
webhook_url_env = "STATUS_TEST_HOOK"

[[routes]]
match = {{ severity = "error" }}
receivers = ["team", "{hostile}"]
group_wait = "0s"
"""


@dataclass(frozen=True)
class Deliveries:
    """What ``settle_deliveries`` left: by receiver, the delivery ids in each state."""

    delivered: list[int]
    retrying: list[int]
    failed: list[int]
    pending: list[int]


async def settle_deliveries(pool: asyncpg.Pool, tmp_path: Path, error: str) -> Deliveries:
    """Route the stored triggers to ``team`` and to a receiver with a hostile name, as the
    alert stage would; then of the claimed deliveries: the first is delivered, the second
    retried later after ``error``, the third failed with ``error``; the rest are left
    pending (released unsent)."""
    path = tmp_path / "routes.toml"
    path.write_text(ROUTES.format(hostile=HOSTILE.replace('"', '\\"')))
    store = AlertStore(pool)
    await store.route_pending(load_routes(path))
    claimed: list[DueDelivery] = await store.claim_due("alert-test", 60)
    claimed.sort(key=lambda d: d.id)
    delivered, retrying, failed, rest = claimed[:1], claimed[1:2], claimed[2:3], claimed[3:]
    marks: list[Mark] = [Delivered(tuple(delivered), {"ts": "1"})] if delivered else []
    marks += [Retry(item, error, 600) for item in retrying]
    marks += [GiveUp(item, error, "failed") for item in failed]
    await store.mark(marks, "alert-test")
    await store.release(rest, "alert-test")
    return Deliveries(
        [d.id for d in delivered],
        [d.id for d in retrying],
        [d.id for d in failed],
        [d.id for d in rest],
    )


PATCH = "--- a/app/orders.py\n+++ b/app/orders.py\n@@ -1 +1 @@\n-int(q)\n+int(q or 0)\n"
#: What the fix policy says of a fix that needs a person's approval.
NEEDS_APPROVAL = PolicyDecision(
    verdict="approval", reasons=["changes app/orders.py, which needs a person"], repository="shop"
)
#: What it says of one it lets go without a person.
AUTOMATIC = PolicyDecision(verdict="auto", reasons=["a one-line change"], repository="shop")


async def finding_of(pool: asyncpg.Pool, issue_id: int, key: str) -> int:
    """A finding with a patch of issue ``issue_id``, as an analyser stores it; its id."""
    return await FindingStore(pool).save(patch_finding(PATCH), issue_id=issue_id, cache_key=key)


async def proposed_fix(pool: asyncpg.Pool, finding_id: int, decision: PolicyDecision) -> int:
    """The fix of ``finding_id`` as mendline proposes it under ``decision``; its id."""
    fix = await FixStore(pool, append_audit, "test").propose(SYSTEM_ACTOR, finding_id, decision)
    return fix.id
