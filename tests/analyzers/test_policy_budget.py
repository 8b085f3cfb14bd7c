"""LLM budget decisions as tables: who may reserve, why not, and how much a reservation is."""

from __future__ import annotations

import pytest

from mendline.analyzers.policy import Spend, decide_reservation, reservation_estimate

NONE = Spend()


@pytest.mark.parametrize(
    ("spent", "reserved", "limits", "granted", "reason"),
    [
        (NONE, NONE, NONE, True, "leaves room"),  # no budget
        (Spend(10_000, 50.0), Spend(10_000, 50.0), NONE, True, "leaves room"),
        (Spend(100), NONE, Spend(1000), True, "leaves room"),
        (Spend(100), Spend(899), Spend(1000), True, "leaves room"),
        (Spend(1000), NONE, Spend(1000), False, "spent (1000 of 1000 tokens)"),
        (Spend(1200), NONE, Spend(1000), False, "spent (1200 of 1000 tokens)"),
        # Analyses in flight hold the rest: a worker starting now does not see it unspent.
        (
            Spend(100),
            Spend(900),
            Spend(1000),
            False,
            "spent (100 of 1000 tokens, 900 tokens reserved by analyses in flight)",
        ),
        (NONE, Spend(0, 2.0), Spend(0, 2.0), False, "$0.0000 of $2.0000, 2.0000 dollars reserved"),
        (Spend(0, 2.5), NONE, Spend(0, 2.0), False, "spent ($2.5000 of $2.0000)"),
        (Spend(0, 1.0), Spend(0, 0.5), Spend(5000, 2.0), True, "leaves room"),
        # Either limit refuses.
        (Spend(5000, 1.0), NONE, Spend(5000, 2.0), False, "5000 of 5000 tokens"),
    ],
)
def test_decide_reservation(
    spent: Spend, reserved: Spend, limits: Spend, granted: bool, reason: str
) -> None:
    decision = decide_reservation(spent, reserved, limits)
    assert decision.granted is granted
    (said,) = decision.reasons
    assert reason in said
    if not granted:  # the words fallback_code_of (migration 0005) reads as budget_spent
        assert said.startswith("the daily LLM budget is spent (")


@pytest.mark.parametrize(
    ("prompt_chars", "average", "prices", "expected"),
    [
        (4000, None, (0.0, 0.0), Spend(1000, 0.0)),  # about 4 characters a token
        (4000, 1500.4, (0.0, 0.0), Spend(1500, 0.0)),  # today's calls are bigger
        (4000, 200.0, (0.0, 0.0), Spend(1000, 0.0)),
        (0, None, (0.0, 0.0), Spend(1, 0.0)),  # never nothing
        (4000, None, (1.0, 3.0), Spend(1000, 0.003)),  # at the dearer price
    ],
)
def test_reservation_estimate(
    prompt_chars: int, average: float | None, prices: tuple[float, float], expected: Spend
) -> None:
    estimate = reservation_estimate(prompt_chars, average, *prices)
    assert estimate.tokens == expected.tokens
    assert estimate.cost == pytest.approx(expected.cost)
