"""Jittered exponential backoff: how long to wait before trying again."""

from __future__ import annotations

import math
import random

__all__ = ["Backoff"]


class Backoff:
    """Delays that double from ``initial`` up to ``cap`` seconds, with a random part taken
    off each so that many workers retrying the same outage do not retry in step.

    ``jitter`` is the fraction of a delay that may be taken off: 0 gives the exact doubling,
    0.5 a delay between half and all of it, 1 ("full jitter") anything up to it. ``next()``
    hands out the delays of one run of failures and ``reset()`` starts again after a
    success; ``delay(attempt)`` is the same schedule for a caller that counts its own
    attempts (a retry count stored with a delivery, say). Pass ``rng`` for a repeatable
    sequence.
    """

    def __init__(
        self,
        initial: float,
        cap: float,
        jitter: float = 0.5,
        *,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 <= initial <= cap:
            raise ValueError(f"need 0 <= initial <= cap, not initial={initial}, cap={cap}")
        if not 0 <= jitter <= 1:
            raise ValueError(f"jitter is a fraction from 0 to 1, not {jitter}")
        self.initial = initial
        self.cap = cap
        self.jitter = jitter
        self._rng = rng or random.Random()
        # From this attempt on the delay is the cap: 2**attempt is never computed for a
        # large attempt count (it would overflow a float).
        # An initial delay of 0 means no waiting at all (a caller that retries at once).
        self._capped_from = math.ceil(math.log2(cap / initial)) if initial else 0
        self._attempts = 0

    @property
    def attempts(self) -> int:
        """Delays handed out by ``next()`` since the start or the last ``reset()``."""
        return self._attempts

    def delay(self, attempt: int) -> float:
        """The delay before retry number ``attempt`` (0 for the first), jittered."""
        if attempt < 0:
            raise ValueError(f"attempt counts from 0, not {attempt}")
        if not self.initial:
            return 0.0
        nominal = self.cap if attempt >= self._capped_from else self.initial * 2.0**attempt
        return min(self.cap, nominal) * (1.0 - self.jitter * self._rng.random())

    def next(self) -> float:
        """The delay before the next retry; each call doubles the following one."""
        seconds = self.delay(self._attempts)
        self._attempts += 1
        return seconds

    def reset(self) -> None:
        """It worked: the next failure waits ``initial`` again."""
        self._attempts = 0

    def __repr__(self) -> str:
        return (
            f"Backoff(initial={self.initial}, cap={self.cap}, jitter={self.jitter},"
            f" attempts={self._attempts})"
        )
