"""Policy: the decisions that gate what is sent or changed, as pure functions (inputs in,
decision out, with its reasons); the stores and stages read what they need and act on them.

- ``alerts``: an alert's severity and labels, and whether, how and when a receiver hears of it
- ``budget``: whether an analysis may reserve LLM budget for its calls, and how much
"""

from mendline.analyzers.policy.alerts import (
    LABEL_NAMES,
    NO_GROUP,
    TAG_PREFIX,
    DeliveryDecision,
    DeliveryMode,
    FollowUp,
    GroupState,
    RouteTiming,
    SentMessage,
    alert_labels,
    alert_severity,
    decide_delivery,
    follow_finding,
    higher_severity,
    resolve_audience,
    takes_digests,
)
from mendline.analyzers.policy.budget import (
    BudgetDecision,
    Spend,
    decide_reservation,
    reservation_estimate,
)

__all__ = [
    "LABEL_NAMES",
    "NO_GROUP",
    "TAG_PREFIX",
    "BudgetDecision",
    "DeliveryDecision",
    "DeliveryMode",
    "FollowUp",
    "GroupState",
    "RouteTiming",
    "SentMessage",
    "Spend",
    "alert_labels",
    "alert_severity",
    "decide_delivery",
    "decide_reservation",
    "follow_finding",
    "higher_severity",
    "reservation_estimate",
    "resolve_audience",
    "takes_digests",
]
