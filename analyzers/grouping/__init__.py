"""Grouping: the fingerprint and title that put an event into an issue, and the scrubber that
filters secrets out of events before anything stores or sends them."""

from mendline.analyzers.grouping.fingerprint import (
    ALGORITHM_VERSION,
    Grouping,
    culprit,
    default_in_app,
    fingerprint,
    parameterize,
    title,
)
from mendline.analyzers.grouping.scrubbing import (
    CREDENTIALS,
    FILTERED,
    Credential,
    Scrubber,
    child_environment,
    scrub,
)

__all__ = [
    "ALGORITHM_VERSION",
    "CREDENTIALS",
    "FILTERED",
    "Credential",
    "Grouping",
    "Scrubber",
    "child_environment",
    "culprit",
    "default_in_app",
    "fingerprint",
    "parameterize",
    "scrub",
    "title",
]
