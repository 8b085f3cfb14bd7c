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
from mendline.analyzers.health.thresholds import Judgement, judge

__all__ = [
    "DEFAULT_KEYS",
    "NOT_OBSERVED",
    "CheckSet",
    "Condition",
    "Judgement",
    "check_env",
    "default_conditions",
    "evaluate",
    "judge",
    "load_checks",
    "parse_checks",
    "parse_condition",
]
