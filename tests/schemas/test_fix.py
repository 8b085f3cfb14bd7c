"""The fix contract: every legal transition is allowed, every other one refused by name."""

from __future__ import annotations

import pytest

from mendline.schemas.errors import IllegalTransition
from mendline.schemas.fix import (
    FINAL_STATES,
    FIX_STATES,
    TRANSITIONS,
    check_transition,
    fix_branch,
    revert_branch,
)

LEGAL = [
    ("proposed", "approved"),
    ("proposed", "rejected"),
    ("proposed", "applying"),
    ("approved", "applying"),
    ("approved", "rejected"),
    ("applying", "applied"),
    ("applying", "failed"),
    ("applying", "proposed"),
    ("applied", "deployed"),
    ("applied", "rolled_back"),
    ("deployed", "verified"),
    ("deployed", "regressed"),
    ("deployed", "rolled_back"),
    ("verified", "rolled_back"),
    ("regressed", "rolled_back"),
]


@pytest.mark.parametrize(("current", "wanted"), LEGAL)
def test_legal_transitions_pass(current: str, wanted: str) -> None:
    check_transition(current, wanted)  # type: ignore[arg-type]
    assert wanted in TRANSITIONS[current]  # type: ignore[index]


@pytest.mark.parametrize(
    ("current", "wanted"),
    [(c, w) for c in FIX_STATES for w in FIX_STATES if (c, w) not in LEGAL],
)
def test_every_other_transition_is_refused_by_name(current: str, wanted: str) -> None:
    with pytest.raises(IllegalTransition) as refused:
        check_transition(current, wanted)  # type: ignore[arg-type]
    assert (refused.value.current, refused.value.wanted) == (current, wanted)
    assert f"{current} cannot become {wanted}" in str(refused.value)


def test_final_states_and_the_branch_name() -> None:
    assert {"rejected", "failed", "rolled_back"} == FINAL_STATES
    with pytest.raises(IllegalTransition, match="it is final"):
        check_transition("failed", "applying")
    assert fix_branch(12, 3) == "mendline/fix-12-3"
    assert revert_branch(12, 3) == "mendline/revert-12-3"
