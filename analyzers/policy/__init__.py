"""Policy: the decisions that gate what is sent or changed, as pure functions (inputs in,
decision out, with its reasons); the stores and stages read what they need and act on them.

- ``alerts``: the severity an LLM's finding may keep, an alert's severity and labels, and
  whether, how and when a receiver hears of it
"""

from mendline.analyzers.policy.alerts import (
    LABEL_NAMES,
    NO_GROUP,
    SEVERITY_RAISE_CONFIDENCE,
    TAG_PREFIX,
    DeliveryDecision,
    DeliveryMode,
    FollowUp,
    GroupState,
    RouteTiming,
    SentMessage,
    SeverityDecision,
    alert_labels,
    alert_severity,
    decide_delivery,
    finding_severity,
    follow_finding,
    higher_severity,
    resolve_audience,
    takes_digests,
)

__all__ = [
    "LABEL_NAMES",
    "NO_GROUP",
    "SEVERITY_RAISE_CONFIDENCE",
    "TAG_PREFIX",
    "DeliveryDecision",
    "DeliveryMode",
    "FollowUp",
    "GroupState",
    "RouteTiming",
    "SentMessage",
    "SeverityDecision",
    "alert_labels",
    "alert_severity",
    "decide_delivery",
    "finding_severity",
    "follow_finding",
    "higher_severity",
    "resolve_audience",
    "takes_digests",
]
