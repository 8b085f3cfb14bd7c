"""The demo's pieces that need no servers: its routing file and its screen."""

from __future__ import annotations

import io
from pathlib import Path

from mendline._demo import SLACK_WEBHOOK_ENV, _Screen, demo_routes
from mendline.sinks._routing import alert_labels, check_secrets, load_routes


def receivers_for(path: Path, severity: str) -> list[str]:
    table = load_routes(path)
    return [name for _, name in table.route(alert_labels(severity=severity, kind="new_issue"))]


def test_the_demo_routes_send_errors_to_slack_and_everything_from_warning_to_email(
    tmp_path: Path,
) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(demo_routes(2525))
    assert receivers_for(path, "critical") == ["demo-slack", "demo-email"]
    assert receivers_for(path, "error") == ["demo-slack", "demo-email"]
    assert receivers_for(path, "warning") == ["demo-email"]
    assert receivers_for(path, "info") == []
    table = load_routes(path)
    assert table.receivers["demo-email"].smtp_port == 2525  # type: ignore[union-attr]
    # The only secret is the stand-in's webhook URL, which the demo sets itself.
    assert check_secrets(table, {}) and not check_secrets(table, {SLACK_WEBHOOK_ENV: "http://x"})


def test_a_terminal_gets_one_status_line_redrawn_under_the_story() -> None:
    stream = io.StringIO()
    screen = _Screen(stream, interactive=True)
    screen.status("events 1", 0.1)
    screen.status("events 2", 0.2)
    screen.say("  slack  new issue")
    screen.end_status()
    out = stream.getvalue()
    # Each status redraws the line in place; a story line clears it, then the status returns.
    assert out.count("\r\x1b[K") == 3
    assert "events 1" in out and out.rstrip().endswith("(0.2 s)")
    assert "\r\x1b[K" + "\x1b[36m" not in out  # no style was asked for that line
    assert "  slack  new issue\n" in out


def test_plain_output_prints_progress_lines_only_when_they_change_and_the_last_one_always() -> None:
    stream = io.StringIO()
    screen = _Screen(stream, interactive=False)
    screen.status("events 1", 0.0)
    screen.status("events 1", 0.5)  # unchanged: not printed again
    screen.status("events 5", 0.9)  # within the second: held back...
    screen.end_status()  # ...and printed at the end
    lines = stream.getvalue().splitlines()
    assert lines == ["  [  0.0 s] events 1", "  [  0.9 s] events 5"]
    assert "\x1b[" not in stream.getvalue()  # no colours, no redrawing
