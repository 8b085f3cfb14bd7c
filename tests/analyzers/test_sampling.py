"""Which of an issue's events of an hour are stored: the first ones whole, the first of each
release and environment whole, then a uniform reservoir sample; as tables."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from mendline.analyzers.sampling import (
    MAX_PAIRS,
    WHOLE,
    HourSample,
    pair_key,
    sample_hour,
)

F = "f" * 32
A = pair_key(F, "1.0", "production")
B = pair_key(F, "1.1", "production")
C = pair_key(F, "1.0", "staging")


class _Scripted(random.Random):
    """A generator whose randrange answers are given in advance: which slot each offered
    event draws."""

    def __init__(self, picks: list[int]) -> None:
        super().__init__(0)
        self.picks = list(picks)
        self.asked: list[int] = []

    def randrange(self, stop: int, *args: object, **kwargs: object) -> int:  # type: ignore[override]
        self.asked.append(stop)
        return self.picks.pop(0)


@pytest.mark.parametrize(
    ("before", "pairs", "full", "reservoir", "picks", "places", "replaced", "after"),
    [
        # The first `full` of the hour are stored whole, then the reservoir fills in order.
        (HourSample(), [A] * 5, 3, 2, [], [WHOLE, WHOLE, WHOLE, 0, 1], [], (5, 3, 2, 2)),
        # Past a full reservoir, the k-th offered draws from k: below the slots takes one.
        (HourSample(5, 3, 2, 2, frozenset({A})), [A], 3, 2, [1], [1], [1], (6, 3, 3, 2)),
        # ... at or above it is counted and not stored.
        (HourSample(5, 3, 2, 2, frozenset({A})), [A], 3, 2, [2], [None], [], (6, 3, 3, 2)),
        # A slot taken twice in one batch: the first taker is not stored at all, and the
        # stored holder of an earlier batch is replaced once.
        (
            HourSample(5, 3, 2, 2, frozenset({A})),
            [A, A],
            3,
            2,
            [0, 0],
            [None, 0],
            [0],
            (7, 3, 4, 2),
        ),
        # A slot filled in this batch and taken again in it replaces nothing stored.
        (HourSample(3, 3, 0, 0, frozenset({A})), [A, A, A], 3, 2, [1], [0, None, 1], [], None),
        # A release or an environment not stored yet this hour is stored whole, past `full`.
        (
            HourSample(5, 3, 2, 2, frozenset({A})),
            [B, C, B],
            3,
            2,
            [2],
            [WHOLE, WHOLE, None],
            [],
            (8, 5, 3, 2),
        ),
        # full 0: no sampling, every event whole.
        (HourSample(), [A] * 4, 0, 2, [], [WHOLE] * 4, [], None),
        # A reservoir made bigger within the hour: while no more were offered than its
        # size, each takes the next slot, replacing nothing; past it, the draw again.
        (HourSample(5, 3, 2, 2, frozenset({A})), [A] * 3, 3, 4, [4], [2, 3, None], [], None),
        # ... and the slots stay contiguous: the next empty one is taken, whatever was drawn.
        (HourSample(6, 3, 3, 2, frozenset({A})), [A], 3, 4, [], [2], [], (7, 3, 4, 3)),
        (HourSample(7, 3, 5, 2, frozenset({A})), [A], 3, 4, [3], [2], [], (8, 3, 6, 3)),
        # reservoir 0: past `full`, nothing more is stored.
        (HourSample(), [A] * 4, 2, 0, [0, 0], [WHOLE, WHOLE, None, None], [], (4, 2, 2, 0)),
    ],
)
def test_each_events_place(
    before: HourSample,
    pairs: list[str],
    full: int,
    reservoir: int,
    picks: list[int],
    places: list[int | None],
    replaced: list[int],
    after: tuple[int, int, int, int] | None,
) -> None:
    rng = _Scripted(picks)
    decided = sample_hour(before, pairs, full=full, reservoir=reservoir, rng=rng)
    assert decided.places == places
    assert decided.replaced == replaced
    assert decided.after.received == before.received + len(pairs)
    if after is not None:
        got = decided.after
        assert (got.received, got.kept, got.offered, got.sampled) == after
    # The k-th offered event past a full reservoir draws from range(k).
    assert all(stop > reservoir for stop in rng.asked)


def test_the_pairs_remembered_are_bounded() -> None:
    pairs = [pair_key(F, f"r{n}", "production") for n in range(MAX_PAIRS + 5)]
    decided = sample_hour(HourSample(), pairs, full=1, reservoir=0, rng=random.Random(1))
    # The first MAX_PAIRS releases are stored whole; the ones past the bound are sampled.
    assert decided.places == [WHOLE] * MAX_PAIRS + [None] * 5
    assert len(decided.after.pairs) == MAX_PAIRS


def test_a_pair_key_keeps_fingerprint_release_and_environment_apart() -> None:
    assert pair_key(F, "1.0", "prod") != pair_key(F, "1.0p", "rod")
    assert pair_key(F, "1.0", "prod") != pair_key("e" * 32, "1.0", "prod")
    assert pair_key(F, None, "prod") == pair_key(F, "", "prod")


def test_the_reservoir_is_a_uniform_sample_of_what_was_offered() -> None:
    # 4,000 hours of one issue, 30 events each after 0 whole ones, a reservoir of 3, fed in
    # batches of 7: each of the 30 positions ends up in the sample about 3/30 of the time.
    rng = random.Random(20261206)
    kept: Counter[int] = Counter()
    hours = 4000
    for _ in range(hours):
        state = HourSample(kept=1, pairs=frozenset({A}))  # past `full` already
        holders: dict[int, int] = {}
        position = 0
        while position < 30:
            batch = [A] * min(7, 30 - position)
            decided = sample_hour(state, batch, full=1, reservoir=3, rng=rng)
            for offset, place in enumerate(decided.places):
                if place is not None:
                    holders[place] = position + offset
            state = decided.after
            position += len(batch)
        assert sorted(holders) == [0, 1, 2]
        kept.update(holders.values())
    expected = hours * 3 / 30  # 400 per position
    assert set(kept) == set(range(30))
    # A fixed seed: deterministic. Binomial sd is about 19; 4 sd either way.
    assert all(abs(n - expected) < 80 for n in kept.values()), sorted(kept.items())
