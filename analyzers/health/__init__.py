"""Health decisions, pure: is a check down (thresholds, flapping, maintenance), Gatus-style
conditions over what a probe saw, heartbeat schedules, uptime and response-time percentiles."""

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
from mendline.analyzers.health.thresholds import Judgement, judge

__all__ = [
    "MAX_VERDICTS",
    "HeartbeatJudgement",
    "HeartbeatVerdict",
    "Judgement",
    "active_window",
    "checkins_since",
    "expected_after",
    "judge",
    "judge_heartbeat",
    "next_window_change",
    "validate_cron",
]
