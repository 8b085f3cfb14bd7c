"""Health decisions, pure: is a check down (thresholds, flapping, maintenance), Gatus-style
conditions over what a probe saw, the checks file, heartbeat schedules, uptime and
response-time percentiles."""

from mendline.analyzers.health.checks_file import (
    DEFAULT_KEYS,
    CheckSet,
    check_env,
    load_checks,
    parse_checks,
)
from mendline.analyzers.health.conditions import (
    NOT_OBSERVED,
    Condition,
    default_conditions,
    evaluate,
    parse_condition,
)
from mendline.analyzers.health.heartbeat import (
    MAX_VERDICTS,
    HeartbeatJudgement,
    HeartbeatVerdict,
    checkins_since,
    expected_after,
    judge_heartbeat,
    validate_cron,
)
from mendline.analyzers.health.maintenance import active_window, next_window_change
from mendline.analyzers.health.results import heartbeat_result, probe_result
from mendline.analyzers.health.thresholds import Judgement, judge

__all__ = [
    "DEFAULT_KEYS",
    "MAX_VERDICTS",
    "NOT_OBSERVED",
    "CheckSet",
    "Condition",
    "HeartbeatJudgement",
    "HeartbeatVerdict",
    "Judgement",
    "active_window",
    "check_env",
    "checkins_since",
    "default_conditions",
    "evaluate",
    "expected_after",
    "heartbeat_result",
    "judge",
    "judge_heartbeat",
    "load_checks",
    "next_window_change",
    "parse_checks",
    "parse_condition",
    "probe_result",
    "validate_cron",
]
