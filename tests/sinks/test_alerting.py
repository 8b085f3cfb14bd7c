"""Pure alerting rules: an alert's severity, a route's identity."""

from __future__ import annotations

from pathlib import Path

import pytest

from mendline.sinks.postgres import alert_severity


@pytest.mark.parametrize(
    ("level", "finding", "kind", "expected"),
    [
        ("critical", None, "new_issue", "critical"),
        ("error", None, "new_issue", "error"),
        ("warning", None, "new_issue", "warning"),
        ("info", None, "new_issue", "info"),
        ("debug", None, "new_issue", "info"),
        ("error", "critical", "new_issue", "critical"),  # the finding says it is worse
        ("warning", "high", "new_issue", "error"),
        ("error", "low", "new_issue", "error"),  # a finding never lowers it
        ("warning", None, "frequency", "error"),  # a spike: one step up
        ("info", None, "regression", "warning"),
        ("error", None, "frequency", "error"),  # ...but never to paging by itself
        ("critical", None, "regression", "critical"),
    ],
)
def test_alert_severity(level: str, finding: str | None, kind: str, expected: str) -> None:
    assert alert_severity(level, finding, kind) == expected


def test_a_route_keeps_its_key_when_the_file_moves_it(tmp_path: Path) -> None:
    from mendline.sinks.postgres import route_key
    from mendline.sinks.routing import load_routes

    route = '[[routes]]\nmatch = { severity = "error" }\nreceivers = ["team"]\n'
    other = '[[routes]]\nmatch = { severity = "critical" }\nreceivers = ["team"]\n'
    receiver = '[receivers.team]\ntype = "slack"\nwebhook_url_env = "W"\n'
    before = tmp_path / "before.toml"
    after = tmp_path / "after.toml"
    before.write_text(receiver + route + other)
    after.write_text("# a comment\n\n" + receiver + other + route)  # moved, and second now
    old = load_routes(before).routes[0]
    new = load_routes(after).routes[1]
    assert old.line != new.line
    assert route_key(old) == route_key(new)
    assert route_key(old) != route_key(load_routes(after).routes[0])
