"""A circuit breaker: after repeated failures stop calling, then probe again later."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["CircuitBreaker"]


class CircuitBreaker:
    """Closed until ``failures`` calls fail in a row; then open for ``cooldown`` seconds,
    during which calls are refused; then half-open: one probe call at a time is let through,
    and its outcome closes the breaker again or opens it for another cooldown."""

    def __init__(
        self, failures: int, cooldown: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._threshold = failures
        self._cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open``."""
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self._cooldown:
            return "open"
        return "half-open"

    def allow(self) -> bool:
        """Whether a call may be made now; in half-open state, True once per probe."""
        state = self.state
        if state == "closed":
            return True
        if state == "open" or self._probing:
            return False
        self._probing = True
        return True

    def success(self) -> None:
        """A call succeeded: close the breaker."""
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def failure(self) -> None:
        """A call failed: count it; open (again) at the threshold or after a failed probe."""
        self._failures += 1
        if self._probing or self._failures >= self._threshold:
            self._opened_at = self._clock()
            self._probing = False

    def release(self) -> None:
        """A call let through ended with neither outcome (cancelled): let another probe go."""
        self._probing = False
