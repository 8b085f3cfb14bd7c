"""judge(): thresholds both ways, maintenance freezing the state, flapping and settling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mendline.analyzers.health import judge
from mendline.schemas.checks import CheckState

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
LIMITS = {"failure_threshold": 3, "success_threshold": 2, "flap_threshold": 4, "flap_window": 600}


def run(results: str, state: CheckState | None = None, step: float = 30) -> list[str]:
    """Feed results ('+' success, '-' failure, 'm' a failure in maintenance) one ``step``
    seconds apart; each result's status and transition as "status/transition"."""
    state = state or CheckState()
    seen = []
    for i, mark in enumerate(results):
        at = T0 + timedelta(seconds=i * step)
        judged = judge(state, mark == "+", at, in_maintenance=mark == "m", **LIMITS)
        state = judged.state
        seen.append(f"{state.status}/{judged.transition or ''}{'~' if state.flapping else ''}")
    return seen


@pytest.mark.parametrize(
    ("results", "last"),
    [
        ("+", "up/"),  # the first success is up, nothing to tell
        ("--", "unknown/"),  # below the threshold: still unknown
        ("---", "down/down"),  # unknown -> down is told
        ("+--", "up/"),  # two failures: not yet
        ("+---", "down/down"),  # the third in a row
        ("+--+--", "up/"),  # a success in between resets the count
        ("+---+", "down/"),  # one success is not enough to recover
        ("+---++", "up/recovered"),
        ("+---+-++", "up/recovered"),  # a failure resets the successes
        ("+mmmm", "up/"),  # failures in maintenance do not count
        ("+mm-", "up/"),  # counting starts afresh after the window
        ("+--m-", "up/"),  # the window resets the failures before it too
        ("+mm---", "down/down"),  # broken during the window: down after it
        ("+---mm++", "up/recovered"),
    ],
)
def test_thresholds(results: str, last: str) -> None:
    assert run(results)[-1] == last


def test_each_transition_is_told_once() -> None:
    seen = run("+------++++++")
    assert [s for s in seen if not s.endswith("/")] == ["down/down", "up/recovered"]


def test_flapping_collapses_alerts_into_one_until_it_settles() -> None:
    # down, up, down, up within 10 minutes: the fourth change is "flapping", then quiet.
    seen = run("+---++---++---++---")
    told = [s for s in seen if "/" in s and s.split("/")[1].strip("~")]
    assert told == ["down/down", "up/recovered", "down/down", "up/flapping~"]
    assert seen[-1] == "down/~"  # changed again, not told


def test_flapping_settles_after_a_quiet_window_and_tells_the_status() -> None:
    state = CheckState()
    for i, mark in enumerate("+---++---++---++"):
        state = judge(state, mark == "+", T0 + timedelta(seconds=i * 30), **LIMITS).state
    assert state.flapping and state.status == "up"
    quiet = T0 + timedelta(seconds=15 * 30 + 601)
    settled = judge(state, True, quiet, **LIMITS)
    assert settled.transition == "recovered" and not settled.state.flapping
    assert "settled up" in settled.reasons[0]


def test_changes_outside_the_window_are_forgotten() -> None:
    # The same four changes spread over an hour never flap.
    seen = run("+---++---++---++---", step=120)
    assert not any("~" in s for s in seen)
    assert seen[-1] == "down/down"


def test_reasons_say_why() -> None:
    judged = judge(CheckState("up", T0), False, T0, **LIMITS)
    assert judged.reasons == ("up: 1 failure in a row",)
    state = CheckState("up", T0, failures=2)
    assert judge(state, False, T0, **LIMITS).reasons == ("up -> down: 3 failures in a row",)
