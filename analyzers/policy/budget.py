"""LLM budget decisions: whether an analysis may reserve budget for its calls, and how much.

Pure functions over plain values: the finding store reads today's spending and the
reservations of the analyses in flight (under a lock, so that workers take turns), calls
them, and writes the reservation they grant.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BudgetDecision", "Spend", "decide_reservation", "reservation_estimate"]

# About 4 characters a token: the estimate the LLM client charges when a server reports no
# usage, used here for a prompt not sent yet.
_CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class Spend:
    """Tokens and US dollars."""

    tokens: int = 0
    cost: float = 0.0


@dataclass(frozen=True)
class BudgetDecision:
    """Whether an analysis may call the LLM, and why (the reason of its fallback when not)."""

    granted: bool
    reasons: tuple[str, ...]


def reservation_estimate(
    prompt_chars: int, average_tokens: float | None, input_price: float, output_price: float
) -> Spend:
    """What an analysis reserves: the larger of its prompt's size in tokens (about 4
    characters each) and the average call of today, priced at the dearer of the two prices
    (US dollars per million tokens): more than it will likely spend, rather than less."""
    tokens = max(prompt_chars // _CHARS_PER_TOKEN, round(average_tokens or 0), 1)
    return Spend(tokens, tokens * max(input_price, output_price) / 1e6)


def decide_reservation(spent: Spend, reserved: Spend, limits: Spend) -> BudgetDecision:
    """Decide whether an analysis may call the LLM: while what today's calls ``spent`` and
    what the analyses in flight ``reserved`` stay below each daily limit (0: none) in
    ``limits``. The reservations count as spent already, so that workers starting at once
    do not all see the budget unspent."""
    for unit, spent_, reserved_, limit in (
        ("tokens", spent.tokens, reserved.tokens, limits.tokens),
        ("dollars", spent.cost, reserved.cost, limits.cost),
    ):
        if not limit or spent_ + reserved_ < limit:
            continue
        amount = _amount(unit, spent_, limit)
        if spent_ >= limit:
            return BudgetDecision(False, (f"the daily LLM budget is spent ({amount})",))
        held = f"{reserved_:.4f} dollars" if unit == "dollars" else f"{reserved_} tokens"
        reason = f"the daily LLM budget is spent ({amount}, {held} reserved by analyses in flight)"
        return BudgetDecision(False, (reason,))
    return BudgetDecision(True, ("the daily LLM budget leaves room: reserved",))


def _amount(unit: str, spent: float, limit: float) -> str:
    if unit == "dollars":
        return f"${spent:.4f} of ${limit:.4f}"
    return f"{int(spent)} of {int(limit)} tokens"
