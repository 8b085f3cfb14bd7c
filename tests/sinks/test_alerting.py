"""A route's identity, which deliveries and groups are keyed by (the alert decisions are in
tests/analyzers/test_policy_alerts.py)."""

from __future__ import annotations

from pathlib import Path

from mendline.sinks.postgres import route_key
from mendline.sinks.routing import load_routes


def test_a_route_keeps_its_key_when_the_file_moves_it(tmp_path: Path) -> None:
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
