"""The argparse types the commands share: durations of 0 or more, and above 0."""

from __future__ import annotations

import argparse
from datetime import timedelta

import pytest

from mendline.cli._options import duration, some_duration


@pytest.mark.parametrize(
    ("text", "allowed", "some"),
    [
        ("0", timedelta(0), "expected a duration above 0, not '0'"),
        ("30m", timedelta(minutes=30), timedelta(minutes=30)),
        ("7d", timedelta(days=7), timedelta(days=7)),
    ],
)
def test_durations_of_0_or_more_and_above_0(
    text: str, allowed: timedelta, some: timedelta | str
) -> None:
    assert duration(text) == allowed
    if isinstance(some, timedelta):
        assert some_duration(text) == some
    else:
        with pytest.raises(argparse.ArgumentTypeError, match=some):
            some_duration(text)


@pytest.mark.parametrize("parse", [duration, some_duration])
def test_what_is_not_a_duration_is_said_so(parse: object) -> None:
    assert callable(parse)
    with pytest.raises(argparse.ArgumentTypeError):
        parse("soon")
