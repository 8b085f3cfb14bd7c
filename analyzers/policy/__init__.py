"""Policy: the decisions that gate what is sent or changed, as pure functions (inputs in,
decision out, with its reasons); the stores and stages read what they need and act on them.

- ``alerts``: the severity an LLM's finding may keep, an alert's severity and labels, and
  whether, how and when a receiver hears of it
- ``budget``: whether an analysis may reserve LLM budget for its calls, and how much
- ``producers``: whether a record may speak for the service it claims (signing keys)
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
from mendline.analyzers.policy.budget import (
    BudgetDecision,
    Spend,
    decide_reservation,
    reservation_estimate,
)
from mendline.analyzers.policy.producers import (
    KEY_ID_HEADER,
    MIN_KEY_LENGTH,
    SIGNATURE_HEADER,
    ProducerAction,
    ProducerAuthMode,
    ProducerKeys,
    ProducerReason,
    ProducerVerdict,
    check_producer,
    parse_producer_keys,
    sign_value,
    signature_headers,
)

__all__ = [
    "KEY_ID_HEADER",
    "LABEL_NAMES",
    "MIN_KEY_LENGTH",
    "NO_GROUP",
    "SEVERITY_RAISE_CONFIDENCE",
    "SIGNATURE_HEADER",
    "TAG_PREFIX",
    "BudgetDecision",
    "DeliveryDecision",
    "DeliveryMode",
    "FollowUp",
    "GroupState",
    "ProducerAction",
    "ProducerAuthMode",
    "ProducerKeys",
    "ProducerReason",
    "ProducerVerdict",
    "RouteTiming",
    "SentMessage",
    "SeverityDecision",
    "Spend",
    "alert_labels",
    "alert_severity",
    "check_producer",
    "decide_delivery",
    "decide_reservation",
    "finding_severity",
    "follow_finding",
    "higher_severity",
    "parse_producer_keys",
    "reservation_estimate",
    "resolve_audience",
    "sign_value",
    "signature_headers",
    "takes_digests",
]
