"""Response-time histograms: buckets, merging, and quantiles within the stated error."""

from __future__ import annotations

import math
import random

import pytest

from mendline.analyzers.health import (
    HISTOGRAM_BUCKETS,
    RELATIVE_ERROR,
    bucket_of,
    histogram,
    merge_histograms,
    quantile,
)


def exact(values: list[float], q: float) -> float:
    """The value of rank ceil(q * n), at least the first: what quantile() estimates."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@pytest.mark.parametrize(
    ("ms", "bucket"),
    [
        (0.0, 0),
        (0.99, 0),
        (float("nan"), 0),
        (1.0, 1),
        (1.08, 1),  # below 2^(1/8) = 1.0905
        (1.1, 2),
        (2.0, 9),
        (1000.0, 1 + math.floor(8 * math.log2(1000))),
        (2.0**17 - 1, HISTOGRAM_BUCKETS - 2),
        (2.0**17, HISTOGRAM_BUCKETS - 1),
        (1e9, HISTOGRAM_BUCKETS - 1),
    ],
)
def test_a_response_time_falls_in_its_log_scale_bucket(ms: float, bucket: int) -> None:
    assert bucket_of(ms) == bucket


def test_the_stated_relative_error_is_4_4_percent() -> None:
    assert abs(RELATIVE_ERROR - 0.0443) < 5e-4


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 0.5, None),
        ([0.2, 0.3], 0.5, 0.5),  # below 1 ms: the bucket's middle
        ([200_000.0], 0.99, 2.0**17),  # overflow: its lower bound
        ([10.0] * 99 + [900.0], 0.99, 10.0),
        ([10.0] * 99 + [900.0], 1.0, 900.0),
        ([10.0] * 94 + [900.0] * 6, 0.95, 900.0),
        ([5.0], 0.0, 5.0),  # the first value at least
    ],
)
def test_quantile_reads_the_bucket_of_the_rank(
    values: list[float], q: float, expected: float | None
) -> None:
    got = quantile(histogram(values), q)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, rel=RELATIVE_ERROR)


def test_quantiles_of_random_latencies_stay_within_the_stated_error() -> None:
    rng = random.Random(13)
    values = [rng.lognormvariate(4, 1.2) + 1 for _ in range(5000)]
    counts = histogram(values)
    for q in (0.5, 0.9, 0.95, 0.99):
        assert quantile(counts, q) == pytest.approx(exact(values, q), rel=RELATIVE_ERROR)


def test_merged_histograms_are_the_histogram_of_all_values() -> None:
    a, b = [3.0, 40.0, 40.0], [500.0, 7000.0]
    assert merge_histograms(histogram(a), histogram(b)) == histogram(a + b)
    assert merge_histograms([1, 2], [1]) == [2, 2]
