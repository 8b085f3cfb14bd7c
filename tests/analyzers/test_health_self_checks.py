"""mendline's own checks, made from the settings."""

from __future__ import annotations

from mendline.analyzers.health import SELF_CHECK_PREFIX, default_conditions, self_checks
from mendline.schemas.checks import KafkaCheck, PostgresCheck
from mendline.schemas.settings import Settings


def test_self_checks_follow_the_settings_and_carry_the_self_labels() -> None:
    settings = Settings(
        consumer_group="group-a",
        errors_topic="topic-a",
        self_check_max_lag=7,
        self_check_max_age=120,
    )
    checks = {check.name: check for check in self_checks(settings)}
    assert set(checks) == {
        "mendline.database",
        "mendline.consumer-lag",
        "mendline.analysis-backlog",
        "mendline.alert-backlog",
        "mendline.llm-breaker",
    }
    lag = checks["mendline.consumer-lag"]
    assert isinstance(lag, KafkaCheck)
    assert (lag.group, lag.topic) == ("group-a", "topic-a")
    assert "[LAG] <= 7" in default_conditions(lag)
    backlog = checks["mendline.analysis-backlog"]
    assert isinstance(backlog, PostgresCheck) and backlog.conditions == ["[RESULT] < 120"]
    for check in checks.values():
        assert check.name.startswith(SELF_CHECK_PREFIX)
        assert check.labels_service == "mendline" and check.tags == {"mendline": "self"}
