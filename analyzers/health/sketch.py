"""Response-time histograms of fixed log-scale buckets: merged by element-wise sums, read as
quantiles within 4.4 % (the same logic as SQL's ``mendline.histogram_quantile``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = [
    "HISTOGRAM_BUCKETS",
    "RELATIVE_ERROR",
    "bucket_of",
    "histogram",
    "merge_histograms",
    "quantile",
]

_PER_DOUBLING = 8
_DOUBLINGS = 17  # 2^17 ms: 131 s, above any check's timeout
#: Bucket 0 is below 1 ms; bucket k (1..136) is [2^((k-1)/8), 2^(k/8)) ms; the last is
#: 2^17 ms (131 s) and above.
HISTOGRAM_BUCKETS = _PER_DOUBLING * _DOUBLINGS + 2
#: How far a quantile read from a bucket (its geometric middle) may be from the true value,
#: relatively, for values between 1 ms and 131 s: 2^(1/16) - 1.
RELATIVE_ERROR = 2 ** (1 / (2 * _PER_DOUBLING)) - 1


def bucket_of(ms: float) -> int:
    """The bucket of a response time in milliseconds."""
    if not ms >= 1:  # NaN too
        return 0
    return min(HISTOGRAM_BUCKETS - 1, 1 + math.floor(_PER_DOUBLING * math.log2(ms)))


def histogram(values_ms: Iterable[float]) -> list[int]:
    """The histogram of some response times in milliseconds."""
    counts = [0] * HISTOGRAM_BUCKETS
    for ms in values_ms:
        counts[bucket_of(ms)] += 1
    return counts


def merge_histograms(a: Sequence[int], b: Sequence[int]) -> list[int]:
    """The histogram of both (element-wise sum; a shorter one counts as zeros beyond it)."""
    width = max(len(a), len(b))
    return [(a[i] if i < len(a) else 0) + (b[i] if i < len(b) else 0) for i in range(width)]


def quantile(counts: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0..1) in ms: the middle of the bucket holding the value of rank
    ceil(q * n) (at least the first); None for an empty histogram."""
    total = sum(counts)
    if total == 0:
        return None
    target = max(1, math.ceil(min(max(q, 0.0), 1.0) * total))
    seen = 0
    last = HISTOGRAM_BUCKETS - 1
    for k, count in enumerate(counts):
        seen += count
        if seen >= target:
            if k == 0:
                return 0.5
            if k >= last:
                return float(2 ** ((k - 1) / _PER_DOUBLING))
            return float(2 ** ((k - 0.5) / _PER_DOUBLING))
    return None  # pragma: no cover - seen reaches total
