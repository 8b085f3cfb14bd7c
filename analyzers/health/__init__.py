"""Health decisions, pure: is a check down (thresholds, flapping, maintenance), Gatus-style
conditions over what a probe saw, heartbeat schedules, uptime and response-time percentiles."""

from mendline.analyzers.health.maintenance import active_window, next_window_change
from mendline.analyzers.health.thresholds import Judgement, judge

__all__ = ["Judgement", "active_window", "judge", "next_window_change"]
