"""Per-key rate limits as tables: a token bucket over time, and the headers SDKs back off by."""

from __future__ import annotations

import pytest

from mendline.analyzers.policy import (
    TokenBucket,
    rate_limits_header,
    retry_after_header,
    take,
)

# 60 a minute (one a second), at most 3 at once
RATE, BURST = 60.0, 3


@pytest.mark.parametrize(
    ("state", "now", "n", "after", "allowed", "retry_after"),
    [
        (None, 100.0, 1, TokenBucket(2.0, 100.0), True, 0.0),  # a new key: a full bucket
        (None, 100.0, 3, TokenBucket(0.0, 100.0), True, 0.0),  # the whole burst at once
        (TokenBucket(0.0, 100.0), 100.0, 1, TokenBucket(0.0, 100.0), False, 1.0),
        (TokenBucket(0.0, 100.0), 100.25, 1, TokenBucket(0.25, 100.25), False, 0.75),
        (TokenBucket(0.0, 100.0), 101.0, 1, TokenBucket(0.0, 101.0), True, 0.0),
        (TokenBucket(0.5, 100.0), 100.0, 2, TokenBucket(0.5, 100.0), False, 1.5),
        (TokenBucket(1.0, 100.0), 100.0, 1, TokenBucket(0.0, 100.0), True, 0.0),
        # refilled up to the burst, never over it
        (TokenBucket(0.0, 100.0), 1000.0, 1, TokenBucket(2.0, 1000.0), True, 0.0),
        (TokenBucket(2.5, 100.0), 110.0, 3, TokenBucket(0.0, 110.0), True, 0.0),
        # a clock that went back adds nothing and takes nothing away
        (TokenBucket(0.5, 100.0), 90.0, 1, TokenBucket(0.5, 100.0), False, 0.5),
        (TokenBucket(1.5, 100.0), 90.0, 1, TokenBucket(0.5, 100.0), True, 0.0),
    ],
)
def test_take(
    state: TokenBucket | None,
    now: float,
    n: int,
    after: TokenBucket,
    allowed: bool,
    retry_after: float,
) -> None:
    new, granted, wait = take(state, now, RATE, BURST, n)
    assert granted is allowed
    assert new.tokens == pytest.approx(after.tokens)
    assert new.updated == after.updated
    assert wait == pytest.approx(retry_after)


def test_a_steady_sender_gets_the_rate_and_a_burst_no_more() -> None:
    state, granted = None, 0
    for tick in range(600):  # ten per second for a minute, at 120 a minute with a burst of 10
        state, allowed, _ = take(state, tick / 10, 120.0, 10)
        granted += allowed
    assert granted == 10 + 119  # the burst, then two a second: 119.8 tokens in 59.9 seconds


def test_waiting_as_long_as_told_is_enough() -> None:
    state, allowed, wait = take(TokenBucket(0.2, 0.0), 0.0, 6.0, 1)
    assert not allowed and wait == pytest.approx(8.0)  # 0.8 token at one per ten seconds
    _, allowed, _ = take(state, wait, 6.0, 1)
    assert allowed


@pytest.mark.parametrize(
    ("per_minute", "burst", "n"),
    [(0.0, 1, 1), (-1.0, 1, 1), (float("nan"), 1, 1), (60.0, 0, 1), (60.0, 3, 0), (60.0, 3, 4)],
)
def test_take_refuses_a_bucket_that_makes_no_sense(per_minute: float, burst: int, n: int) -> None:
    with pytest.raises(ValueError):
        take(None, 0.0, per_minute, burst, n)


@pytest.mark.parametrize(
    ("retry_after", "categories", "scope", "reason", "header"),
    [
        (60.0, ["error", "default"], "key", None, "60:error;default:key"),
        (60.0, ["error", "default"], "key", "key_quota", "60:error;default:key:key_quota"),
        (42.0, [], "organization", "my_limit", "42::organization:my_limit"),  # Relay's test
        (4711.0, ["transaction", "security"], "project", None, "4711:transaction;security:project"),
        (0.2, ["error"], "key", None, "1:error:key"),  # rounded up
        (1.0, ["error"], "key", None, "1:error:key"),
        (1.000001, ["error"], "key", None, "2:error:key"),
        (59.9999999999, ["error"], "key", None, "60:error:key"),  # float noise is not a second
        (0.0, ["error"], "key", None, "1:error:key"),  # never "retry at once"
        (-5.0, ["error"], "key", None, "1:error:key"),
    ],
)
def test_rate_limits_header(
    retry_after: float, categories: list[str], scope: str, reason: str | None, header: str
) -> None:
    assert rate_limits_header(retry_after, categories, scope, reason) == header  # type: ignore[arg-type]


def test_the_header_parses_as_the_python_sdk_parses_it() -> None:
    # sentry_sdk's _parse_rate_limits: entries split on ",", then fields on ":", the
    # categories on ";"; retry_after a float; empty categories mean every category
    header = ", ".join(
        [rate_limits_header(30.5, ["error", "default"]), rate_limits_header(60, [], "project")]
    )
    parsed = []
    for limit in header.split(","):
        retry_after, categories, scope, *_ = limit.strip().split(":")
        parsed.append((float(retry_after), categories.split(";") if categories else None, scope))
    assert parsed == [(31.0, ["error", "default"], "key"), (60.0, None, "project")]


@pytest.mark.parametrize(
    ("categories", "scope", "reason"),
    [
        (["error;default"], "key", None),
        (["error:x"], "key", None),
        (["error, 1"], "key", None),
        (["Error"], "key", None),
        ([""], "key", None),
        (["error"], "key", "quota:1"),
        (["error"], "key", "a\r\nX-Injected: 1"),
        (["error"], "user", None),
    ],
)
def test_rate_limits_header_refuses_what_would_break_it(
    categories: list[str], scope: str, reason: str | None
) -> None:
    with pytest.raises(ValueError):
        rate_limits_header(60, categories, scope, reason)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "header"), [(0.0, "1"), (0.001, "1"), (1.0, "1"), (1.5, "2"), (3600.0, "3600")]
)
def test_retry_after_header(seconds: float, header: str) -> None:
    assert retry_after_header(seconds) == header


@pytest.mark.parametrize("seconds", [float("inf"), float("nan")])
def test_retry_after_is_a_finite_wait(seconds: float) -> None:
    with pytest.raises(ValueError):
        retry_after_header(seconds)
