"""Health decisions, pure: is a check down (thresholds, flapping, maintenance), Gatus-style
conditions over what a probe saw, heartbeat schedules, uptime and response-time percentiles."""

from mendline.analyzers.health.conditions import (
    NOT_OBSERVED,
    Condition,
    default_conditions,
    evaluate,
    parse_condition,
)
from mendline.analyzers.health.thresholds import Judgement, judge

__all__ = [
    "NOT_OBSERVED",
    "Condition",
    "Judgement",
    "default_conditions",
    "evaluate",
    "judge",
    "parse_condition",
]
