"""The one backoff: its schedule, its cap, its jitter and its reset."""

from __future__ import annotations

import random

import pytest

from mendline.analyzers.backoff import Backoff


@pytest.mark.parametrize(
    ("initial", "cap", "expected"),
    [
        (0.1, 10.0, [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0]),
        (0.5, 30.0, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]),
        (1.0, 60.0, [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0]),
        (2.0, 2.0, [2.0, 2.0, 2.0]),
        (0.2, 0.3, [0.2, 0.3, 0.3]),
    ],
)
def test_without_jitter_the_delays_double_up_to_the_cap(
    initial: float, cap: float, expected: list[float]
) -> None:
    backoff = Backoff(initial, cap, jitter=0)
    assert [backoff.next() for _ in expected] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("jitter", "low", "high"),
    [
        (0.0, 1.0, 1.0),
        (0.5, 0.5, 1.0),
        (1.0, 0.0, 1.0),
        (0.25, 0.75, 1.0),
    ],
)
def test_jitter_takes_up_to_its_fraction_off_each_delay(
    jitter: float, low: float, high: float
) -> None:
    backoff = Backoff(1.0, 64.0, jitter, rng=random.Random(7))
    for attempt in range(7):  # 2**6 is the cap
        nominal = 2.0**attempt
        for _ in range(50):
            assert low * nominal <= backoff.delay(attempt) <= high * nominal


def test_jittered_delays_differ_so_workers_do_not_retry_in_step() -> None:
    backoff = Backoff(1.0, 1.0, jitter=0.5)
    assert len({backoff.delay(0) for _ in range(20)}) > 1


def test_the_same_seed_gives_the_same_delays() -> None:
    first = Backoff(0.1, 10.0, rng=random.Random(42))
    second = Backoff(0.1, 10.0, rng=random.Random(42))
    assert [first.next() for _ in range(12)] == [second.next() for _ in range(12)]


def test_reset_starts_the_schedule_again() -> None:
    backoff = Backoff(0.5, 30.0, jitter=0)
    assert [backoff.next() for _ in range(3)] == [0.5, 1.0, 2.0]
    assert backoff.attempts == 3
    backoff.reset()
    assert backoff.attempts == 0
    assert backoff.next() == 0.5


@pytest.mark.parametrize("attempt", [60, 1100, 10**6])
def test_a_long_outage_stays_at_the_cap_without_overflowing(attempt: int) -> None:
    assert Backoff(0.1, 10.0, jitter=0).delay(attempt) == 10.0


@pytest.mark.parametrize(
    ("initial", "cap", "jitter"),
    [(-1.0, 1.0, 0.5), (2.0, 1.0, 0.5), (1.0, 2.0, -0.1), (1.0, 2.0, 1.5)],
)
def test_nonsense_is_refused(initial: float, cap: float, jitter: float) -> None:
    with pytest.raises(ValueError):
        Backoff(initial, cap, jitter)


def test_an_initial_delay_of_zero_retries_at_once() -> None:
    backoff = Backoff(0.0, 30.0, jitter=1.0)
    assert [backoff.next() for _ in range(5)] == [0.0] * 5
    assert backoff.delay(1000) == 0.0


def test_attempts_count_from_zero() -> None:
    with pytest.raises(ValueError):
        Backoff(1.0, 2.0).delay(-1)
