"""What a failing check shows: the issue title from the failing evidence, the target, the
trigger's details, and outside text made safe to store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter

from mendline.analyzers.health import (
    check_target,
    downtime_title,
    judge,
    stored_text,
    trigger_details,
)
from mendline.schemas.checks import Check, CheckResult, CheckState, ConditionResult

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
CHECK: TypeAdapter[Check] = TypeAdapter(Check)


def check(**fields: Any) -> Check:
    return CHECK.validate_python({"name": "payments-api", **fields})


HTTP = {"kind": "http", "url": "https://pay.example.com/health"}


def result(success: bool = False, **fields: Any) -> CheckResult:
    return CheckResult(
        check="payments-api",
        kind=fields.pop("kind", "http"),
        scheduled_at=T0,
        started_at=T0,
        duration=0.2,
        success=success,
        **fields,
    )


def failed(condition: str, observed: str) -> ConditionResult:
    return ConditionResult(condition=condition, success=False, observed=observed)


def held(condition: str, observed: str) -> ConditionResult:
    return ConditionResult(condition=condition, success=True, observed=observed)


@pytest.mark.parametrize(
    ("definition", "run", "failures", "title"),
    [
        (
            HTTP,
            result(conditions=[failed("[STATUS] == 200", "503")]),
            3,
            "Downtime: payments-api (HTTP 503, 3 checks in a row)",
        ),
        (
            HTTP,
            result(
                conditions=[
                    held("[STATUS] == 200", "200"),
                    failed("[RESPONSE_TIME] < 500", "812"),
                ]
            ),
            1,
            "Downtime: payments-api ([RESPONSE_TIME] < 500: got 812, 1 check)",
        ),
        (
            {**HTTP, "timeout": "5s"},
            result(error="no answer within 5s", error_kind="timeout"),
            4,
            "Downtime: payments-api (timed out after 5s, 4 checks in a row)",
        ),
        (
            {"kind": "tcp", "host": "127.0.0.1", "port": 5432},
            result(kind="tcp", error="[Errno 111] refused", error_kind="refused"),
            2,
            "Downtime: payments-api (connection refused, 2 checks in a row)",
        ),
        (
            {"kind": "heartbeat", "every": "1h"},
            result(kind="heartbeat", error="no check-in by 03:05", error_kind="missed"),
            1,
            "Heartbeat failing: payments-api (no check-in, 1 check)",
        ),
        (
            HTTP,
            result(error="odd\x00thing"),
            3,
            "Downtime: payments-api (odd\ufffdthing, 3 checks in a row)",
        ),
        (HTTP, result(), 3, "Downtime: payments-api (failed, 3 checks in a row)"),
    ],
)
def test_the_downtime_title_names_the_failing_evidence(
    definition: dict[str, Any], run: CheckResult, failures: int, title: str
) -> None:
    assert downtime_title(check(**definition), run, failures) == title


def test_a_huge_observed_value_is_shortened_in_the_title() -> None:
    title = downtime_title(
        check(**HTTP), result(conditions=[failed("[BODY] == ok", "x" * 5000)]), 3
    )
    assert len(title) < 200 and "…" in title


@pytest.mark.parametrize(
    ("definition", "target"),
    [
        (
            {"kind": "http", "url": "https://bot:s3cret@pay.example.com/h"},
            "https://bot:[Filtered]@pay.example.com/h",
        ),
        ({"kind": "tcp", "host": "db.internal", "port": 5432}, "db.internal:5432"),
        ({"kind": "tls", "host": "pay.example.com"}, "pay.example.com:443"),
        (
            {"kind": "dns", "query": "pay.example.com", "record_type": "AAAA"},
            "pay.example.com AAAA",
        ),
        ({"kind": "postgres", "dsn_env": "ORDERS_DSN"}, "$ORDERS_DSN"),
        ({"kind": "kafka", "bootstrap": "k1:9092", "group": "g", "topic": "t"}, "k1:9092 g/t"),
        ({"kind": "kafka", "bootstrap": "k1:9092", "topic": "dlq"}, "k1:9092 dlq"),
        ({"kind": "kafka"}, "$MENDLINE_KAFKA_BOOTSTRAP"),
        ({"kind": "heartbeat", "every": "1h"}, "every 1h"),
        ({"kind": "heartbeat", "cron": "0 3 * * *"}, "cron 0 3 * * * UTC"),
    ],
)
def test_the_target_says_what_the_check_looks_at_without_secrets(
    definition: dict[str, Any], target: str
) -> None:
    assert check_target(check(**definition)) == target


def test_stored_text_drops_nul_and_cuts_long_text() -> None:
    assert stored_text("a\x00b", 10) == "a\ufffdb"
    assert stored_text("abcdef", 4) == "abc…"
    assert stored_text("abcd", 4) == "abcd"


def test_trigger_details_carry_the_evidence_and_the_reasons() -> None:
    c = check(**HTTP, failure_threshold=1, tags={"team": "payments"})
    run = result(conditions=[failed("[STATUS] == 200", "503")], timings={"total": 0.2})
    judged = judge(
        CheckState(),
        False,
        T0,
        failure_threshold=1,
        success_threshold=1,
        flap_threshold=5,
        flap_window=3600,
    )
    assert trigger_details(c, run, judged) == {
        "check": "payments-api",
        "check_kind": "http",
        "target": "https://pay.example.com/health",
        "status": "down",
        "failures": 1,
        "successes": 0,
        "error": None,
        "error_kind": None,
        "conditions": [{"condition": "[STATUS] == 200", "success": False, "observed": "503"}],
        "timings": {"total": 0.2},
        "reasons": list(judged.reasons),
        "scheduled_at": "2026-12-05T12:00:00+00:00",
    }
    assert judged.reasons
