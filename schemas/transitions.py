"""A state machine's one check: may a thing in one state move to another, by its table."""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import TypeVar

from mendline.schemas.errors import IllegalTransition

__all__ = ["check_move"]

_State = TypeVar("_State", bound=str)


def check_move(
    transitions: Mapping[_State, Set[_State]], current: _State, wanted: _State, what: str
) -> None:
    """Return when ``transitions`` lets ``current`` move to ``wanted``; else raise
    IllegalTransition, which names both and what ``current`` may become, in the table's order
    ("a fix that is failed cannot become applying (it can become nothing: it is final)").
    ``what`` is the thing, with its article: "a fix", "a remediation run"."""
    allowed = transitions[current]
    if wanted not in allowed:
        where = ", ".join(s for s in transitions if s in allowed) or "nothing: it is final"
        raise IllegalTransition(
            f"{what} that is {current} cannot become {wanted} (it can become {where})",
            current=current,
            wanted=wanted,
        )
