"""probe_result and heartbeat_result: a run's conditions decide its success."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from mendline.analyzers.health import HeartbeatVerdict, heartbeat_result, probe_result
from mendline.schemas.checks import HeartbeatCheck, HttpCheck, Observation, TcpCheck

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
API = HttpCheck(kind="http", name="api", url="http://api/health")


@pytest.mark.parametrize(
    ("check", "observation", "success", "failing"),
    [
        (API, Observation(values={"STATUS": 200}), True, []),
        (API, Observation(values={"STATUS": 503}), False, ["[STATUS] < 400"]),
        (
            API,
            Observation(error="connection refused", error_kind="refused"),
            False,
            ["[STATUS] < 400"],
        ),
        (
            API.model_copy(update={"conditions": ["[BODY].status == UP", "[RESPONSE_TIME] < 500"]}),
            Observation(values={"STATUS": 200, "BODY": '{"status": "UP"}', "RESPONSE_TIME": 900.0}),
            False,
            ["[RESPONSE_TIME] < 500"],
        ),
        # A check that expects the port closed succeeds on a refusal.
        (
            TcpCheck(
                kind="tcp", name="closed", host="db", port=5432, conditions=["[CONNECTED] == false"]
            ),
            Observation(values={"CONNECTED": False}, error="refused", error_kind="refused"),
            True,
            [],
        ),
        # An unset variable fails the run whatever the conditions say.
        (
            TcpCheck(kind="tcp", name="x", host="db", port=1, conditions=["[CONNECTED] == false"]),
            Observation(values={"CONNECTED": False}, error="MY_DSN is unset", error_kind="config"),
            False,
            [],
        ),
    ],
)
def test_probe_result(
    check: HttpCheck | TcpCheck, observation: Observation, success: bool, failing: list[str]
) -> None:
    result = probe_result(check, T0, T0, 0.25, observation)
    assert result.success is success
    assert [c.condition for c in result.conditions if not c.success] == failing
    assert (result.check, result.kind, result.scheduled_at) == (check.name, check.kind, T0)
    assert result.error_kind == observation.error_kind


def test_a_failing_condition_records_what_was_observed() -> None:
    result = probe_result(API, T0, T0, 0.1, Observation(values={"STATUS": 503}))
    assert result.conditions[0].observed == "503"


def test_heartbeat_result_carries_the_verdict() -> None:
    check = HeartbeatCheck(kind="heartbeat", name="nightly", cron="0 3 * * *")
    missed = heartbeat_result(
        check, HeartbeatVerdict(T0, False, "no check-in", "missed", None, None)
    )
    assert (missed.success, missed.error_kind, missed.scheduled_at) == (False, "missed", T0)
    ran = heartbeat_result(check, HeartbeatVerdict(T0, True, None, None, 42.0, uuid4()))
    assert ran.success and ran.duration == 42.0 and ran.response_time == 42.0
