"""What a person may ask of a fix in each state (``fix_moves``, pure), and which links the fix
page makes of a delivery's URL (``web_link``)."""

from __future__ import annotations

import pytest

from mendline.analyzers.policy import FixMove, fix_moves
from mendline.schemas.fix import FIX_STATES, FixState, PolicyVerdict
from mendline.web._fixes import web_link

CASES: list[tuple[FixState, PolicyVerdict, tuple[str, ...], int, tuple[FixMove, ...]]] = [
    # state, verdict, approvals so far, approvals needed: the moves of "ann"
    ("proposed", "approval", (), 1, ("approve", "reject", "apply")),
    ("proposed", "approval", (), 2, ("approve", "reject")),
    ("proposed", "approval", ("bob",), 2, ("approve", "reject", "apply")),
    ("proposed", "approval", ("ann",), 2, ("reject",)),
    ("proposed", "auto", (), 0, ("reject", "apply")),
    ("approved", "approval", ("ann",), 1, ("reject", "apply")),
    ("applying", "approval", ("ann",), 1, ()),
    ("applied", "approval", ("ann",), 1, ("rollback",)),
    ("deployed", "auto", (), 0, ("rollback",)),
    ("verified", "auto", (), 0, ("rollback",)),
    ("regressed", "approval", ("bob",), 1, ("rollback",)),
    ("failed", "approval", ("bob",), 1, ()),
    ("rejected", "deny", (), 0, ()),
    ("rolled_back", "auto", (), 0, ()),
]


@pytest.mark.parametrize(("state", "verdict", "approvals", "needed", "moves"), CASES)
def test_the_moves_each_state_allows(
    state: FixState,
    verdict: PolicyVerdict,
    approvals: tuple[str, ...],
    needed: int,
    moves: tuple[FixMove, ...],
) -> None:
    assert fix_moves(state, verdict, approvals, needed, "ann") == moves


def test_every_state_is_in_the_table() -> None:
    assert {case[0] for case in CASES} == set(FIX_STATES)


@pytest.mark.parametrize(
    ("url", "link"),
    [
        ("https://forge.example.test/o/r/pull/3", "https://forge.example.test/o/r/pull/3"),
        (
            "http://gitlab.internal/g/p/-/merge_requests/9",
            "http://gitlab.internal/g/p/-/merge_requests/9",
        ),
        (" https://forge.example.test/x ", "https://forge.example.test/x"),
        ("javascript:alert(1)", None),
        ("JavaScript:alert(1)", None),
        ("data:text/html,<script>alert(1)</script>", None),
        ("//evil.example/x", None),
        ("/fixes/1", None),
        ("https:///no-host", None),
        ("http://[::1", None),
        ("", None),
        (None, None),
    ],
)
def test_only_http_and_https_urls_with_a_host_are_links(url: str | None, link: str | None) -> None:
    assert web_link(url) == link
