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
from mendline.analyzers.health.evidence import (
    check_target,
    downtime_title,
    failure_evidence,
    stored_conditions,
    stored_error,
    stored_text,
    trigger_details,
)
from mendline.analyzers.health.heartbeat import (
    MAX_VERDICTS,
    RECOVERY_HOLD,
    SETTLE_MARGIN,
    ClockGuard,
    HeartbeatJudgement,
    HeartbeatVerdict,
    checkins_since,
    expected_after,
    judge_heartbeat,
    judged_until_after,
    validate_cron,
)
from mendline.analyzers.health.maintenance import active_window, next_window_change
from mendline.analyzers.health.results import heartbeat_result, probe_result
from mendline.analyzers.health.self_checks import SELF_CHECK_PREFIX, SELF_DSN_ENV, self_checks
from mendline.analyzers.health.sketch import (
    HISTOGRAM_BUCKETS,
    RELATIVE_ERROR,
    bucket_of,
    histogram,
    merge_histograms,
    quantile,
)
from mendline.analyzers.health.slots import (
    cadence,
    counted_seconds,
    first_slot,
    next_slot,
    slot_offset,
)
from mendline.analyzers.health.thresholds import Judgement, judge

__all__ = [
    "DEFAULT_KEYS",
    "HISTOGRAM_BUCKETS",
    "MAX_VERDICTS",
    "NOT_OBSERVED",
    "RECOVERY_HOLD",
    "RELATIVE_ERROR",
    "SELF_CHECK_PREFIX",
    "SELF_DSN_ENV",
    "SETTLE_MARGIN",
    "CheckSet",
    "ClockGuard",
    "Condition",
    "HeartbeatJudgement",
    "HeartbeatVerdict",
    "Judgement",
    "active_window",
    "bucket_of",
    "cadence",
    "check_env",
    "check_target",
    "checkins_since",
    "counted_seconds",
    "default_conditions",
    "downtime_title",
    "evaluate",
    "expected_after",
    "failure_evidence",
    "first_slot",
    "heartbeat_result",
    "histogram",
    "judge",
    "judge_heartbeat",
    "judged_until_after",
    "load_checks",
    "merge_histograms",
    "next_slot",
    "next_window_change",
    "parse_checks",
    "parse_condition",
    "probe_result",
    "quantile",
    "self_checks",
    "slot_offset",
    "stored_conditions",
    "stored_error",
    "stored_text",
    "trigger_details",
    "validate_cron",
]
