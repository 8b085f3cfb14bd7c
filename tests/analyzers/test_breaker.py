"""The circuit breaker's states, on an injected clock."""

from __future__ import annotations

from mendline.analyzers.breaker import CircuitBreaker


def breaker() -> tuple[CircuitBreaker, list[float]]:
    now = [0.0]
    return CircuitBreaker(failures=3, cooldown=10, clock=lambda: now[0]), now


def test_it_opens_after_failures_in_a_row_only() -> None:
    b, _ = breaker()
    for _ in range(2):
        assert b.allow()
        b.failure()
    b.success()  # the run is broken
    for _ in range(2):
        b.failure()
    assert b.state == "closed" and b.allow()
    b.failure()
    assert b.state == "open" and not b.allow()


def test_after_the_cooldown_one_probe_at_a_time() -> None:
    b, now = breaker()
    for _ in range(3):
        b.failure()
    now[0] = 10.5
    assert b.state == "half-open"
    assert b.allow()
    assert not b.allow()  # a second caller waits for the probe's outcome


def test_a_failed_probe_opens_it_for_another_cooldown() -> None:
    b, now = breaker()
    for _ in range(3):
        b.failure()
    now[0] = 11
    assert b.allow()
    b.failure()
    assert b.state == "open" and not b.allow()
    now[0] = 22
    assert b.allow()
    b.success()
    assert b.state == "closed" and b.allow() and b.allow()


def test_a_probe_that_ended_without_an_outcome_lets_another_go() -> None:
    b, now = breaker()
    for _ in range(3):
        b.failure()
    now[0] = 11
    assert b.allow()
    b.release()  # cancelled, or a request-specific error
    assert b.allow()
