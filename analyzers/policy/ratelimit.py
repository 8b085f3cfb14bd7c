"""Per-key rate limits of the Sentry-compatible endpoint: a token bucket, and the
``Retry-After`` and ``X-Sentry-Rate-Limits`` headers that make Sentry SDKs back off.

Pure functions over a frozen state: the endpoint keeps one ``TokenBucket`` per key, calls
``take`` with the time (any monotonic clock, in seconds) and keeps the state it returns.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "RateLimitScope",
    "TokenBucket",
    "rate_limits_header",
    "retry_after_header",
    "take",
]

#: Who a limit applies to, in ``X-Sentry-Rate-Limits`` (Relay's ``RateLimitScope`` names).
RateLimitScope = Literal["organization", "project", "key"]

# Categories and reason codes are written between ":" ";" and "," in the header.
_HEADER_WORD = re.compile(r"[a-z0-9_.\-]+")


@dataclass(frozen=True, slots=True)
class TokenBucket:
    """A key's bucket: ``tokens`` left (fractions refill continuously) when last looked at,
    at ``updated`` (seconds on the caller's monotonic clock)."""

    tokens: float
    updated: float

    @classmethod
    def full(cls, burst: int, now: float) -> TokenBucket:
        """A bucket that has not been used: ``burst`` tokens."""
        return cls(float(burst), now)


def take(
    state: TokenBucket | None, now: float, per_minute: float, burst: int, n: int = 1
) -> tuple[TokenBucket, bool, float]:
    """Take ``n`` tokens from a bucket refilled at ``per_minute`` tokens a minute and holding
    at most ``burst``: ``(new state, allowed, retry_after)``.

    Refused, nothing is taken and ``retry_after`` is the seconds until ``n`` tokens are
    there; allowed, it is 0. ``state`` None is a full bucket. A clock that went back adds
    no tokens (and never takes any away). ValueError for a rate that is not positive, a
    burst under 1, or an ``n`` under 1 or over ``burst`` (it could never be granted).
    """
    if not per_minute > 0:
        raise ValueError(f"a rate limit refills at a positive rate, not {per_minute!r}")
    if burst < 1:
        raise ValueError(f"a bucket holds at least one token, not {burst!r}")
    if not 1 <= n <= burst:
        raise ValueError(f"take between 1 and the burst ({burst}) tokens, not {n!r}")
    if state is None:
        state = TokenBucket.full(burst, now)
    rate = per_minute / 60.0
    elapsed = max(0.0, now - state.updated)
    tokens = min(float(burst), state.tokens + elapsed * rate)
    updated = max(now, state.updated)
    if tokens >= n:
        return TokenBucket(tokens - n, updated), True, 0.0
    return TokenBucket(tokens, updated), False, (n - tokens) / rate


def retry_after_header(retry_after: float) -> str:
    """``Retry-After``: whole seconds, rounded up, at least 1 (Relay's
    ``remaining_seconds``, which never tells a client to retry at once)."""
    return str(_whole_seconds(retry_after))


def rate_limits_header(
    retry_after: float,
    categories: Sequence[str],
    scope: RateLimitScope = "key",
    reason: str | None = None,
) -> str:
    """One limit of ``X-Sentry-Rate-Limits`` as Relay writes it (``format_rate_limits``):
    ``<seconds>:<category;category>:<scope>[:<reason code>]``, e.g.
    ``60:error;default:key:key_quota``. No categories means every category (``60::key``).
    Join several limits with ``", "``. ValueError for a category or reason that is not a
    lowercase code (it would break the header's syntax), or an unknown scope."""
    if scope not in ("organization", "project", "key"):
        raise ValueError(f"a rate limit's scope is organization, project or key, not {scope!r}")
    for word in (*categories, *(() if reason is None else (reason,))):
        if not _HEADER_WORD.fullmatch(word):
            raise ValueError(f"not a data category or reason code: {word!r}")
    header = f"{_whole_seconds(retry_after)}:{';'.join(categories)}:{scope}"
    return header if reason is None else f"{header}:{reason}"


def _whole_seconds(seconds: float) -> int:
    if not math.isfinite(seconds):
        raise ValueError(f"a wait is a finite number of seconds, not {seconds!r}")
    # rounded to microseconds first: 60.000000000001 seconds of float error is not 61
    return max(1, math.ceil(round(seconds, 6)))
