"""Slots of a check: a per-check offset on its interval's grid, the next slot after a gap,
and the seconds a result stands for in uptime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mendline.analyzers.health import counted_seconds, first_slot, next_slot, slot_offset

T0 = datetime(2026, 12, 5, 12, 0, 7, tzinfo=UTC)


def test_the_first_slot_is_within_one_interval_and_the_same_everywhere() -> None:
    slot = first_slot("payments-api", 300, T0)
    assert T0 < slot <= T0 + timedelta(seconds=300)
    assert first_slot("payments-api", 300, T0) == slot
    # A later start lands on the same grid.
    later = first_slot("payments-api", 300, T0 + timedelta(seconds=1000))
    assert (later - slot).total_seconds() % 300 == pytest.approx(0, abs=1e-5)


def test_checks_of_one_interval_start_at_different_offsets() -> None:
    offsets = {round(slot_offset(f"check-{i}", 300), 3) for i in range(50)}
    assert len(offsets) == 50
    assert all(0 <= o < 300 for o in offsets)


@pytest.mark.parametrize(
    ("behind", "expected"),
    [
        (-10, 60),  # run early: the next slot
        (0, 60),
        (59, 60),
        (60, 120),  # exactly on a slot: the one after
        (3600, 3660),  # down for an hour: once, not 60 times
    ],
)
def test_the_next_slot_is_after_the_slot_and_now(behind: float, expected: float) -> None:
    assert next_slot(T0, 60, T0 + timedelta(seconds=behind)) == T0 + timedelta(seconds=expected)


@pytest.mark.parametrize(
    ("previous", "at", "seconds"),
    [
        (None, 0, 60),  # the first result stands for one cadence
        (0, 60, 60),
        (0, 90, 90),
        (0, 3600, 120),  # capped at two cadences
        (60, 0, 0),  # older than the previous
    ],
)
def test_a_result_counts_the_time_since_the_previous_capped(
    previous: float | None, at: float, seconds: float
) -> None:
    before = None if previous is None else T0 + timedelta(seconds=previous)
    assert counted_seconds(before, T0 + timedelta(seconds=at), 60) == seconds
