"""Health decisions, pure: is a check down (thresholds, flapping, maintenance), Gatus-style
conditions over what a probe saw, heartbeat schedules, uptime and response-time percentiles."""

from mendline.analyzers.health.evidence import (
    check_target,
    downtime_title,
    failure_evidence,
    stored_conditions,
    stored_error,
    stored_text,
    trigger_details,
)
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
    "HISTOGRAM_BUCKETS",
    "RELATIVE_ERROR",
    "Judgement",
    "bucket_of",
    "cadence",
    "check_target",
    "counted_seconds",
    "downtime_title",
    "failure_evidence",
    "first_slot",
    "histogram",
    "judge",
    "merge_histograms",
    "next_slot",
    "quantile",
    "slot_offset",
    "stored_conditions",
    "stored_error",
    "stored_text",
    "trigger_details",
]
