"""The demo's pieces that need no servers: its routing file, its screen, its settle test."""

from __future__ import annotations

import io
import os
import select
from collections.abc import Iterator
from pathlib import Path

import pytest

from mendline.analyzers.policy import alert_labels
from mendline.cli.demo import SLACK_WEBHOOK_ENV, Progress, demo_routes
from mendline.cli.output import Screen
from mendline.sinks.routing import check_secrets, load_routes


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


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[io.TextIOWrapper, int]]:
    """A real pseudo-terminal: (the stream the screen writes to, the fd to read it from)."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    reader, writer = os.openpty()
    stream = open(writer, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        yield stream, reader
    finally:
        stream.close()
        os.close(reader)


def read_all(fd: int) -> str:
    """Everything written so far: a terminal may hand it over in several pieces."""
    chunks = []
    while select.select([fd], [], [], 0.2)[0]:
        chunks.append(os.read(fd, 65536))
    return b"".join(chunks).decode()


def test_a_terminal_gets_colours_and_one_status_line_redrawn_under_the_story(
    terminal: tuple[io.TextIOWrapper, int],
) -> None:
    stream, reader = terminal
    screen = Screen(stream, interactive=True)
    screen.status("events 1", 0.1)
    screen.status("events 2", 0.2)
    screen.say("  slack  new issue", "cyan")
    screen.say("plain")
    screen.end_status()
    out = read_all(reader)
    # Each status redraws the line in place; a story line clears it, then the status returns.
    assert out.count("\r\x1b[K") == 4
    assert "\x1b[36m  slack  new issue\x1b[0m" in out  # styled as asked...
    assert "\x1b[K" + "plain" in out  # ...and a line without a style is left plain
    assert out.rstrip().endswith("events 2  (0.2 s)")


def test_no_colour_when_no_color_is_set(
    terminal: tuple[io.TextIOWrapper, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    stream, reader = terminal
    monkeypatch.setenv("NO_COLOR", "1")
    Screen(stream, interactive=True).say("alert", "red")
    assert read_all(reader).replace("\r", "") == "alert\n"


def test_plain_output_prints_progress_when_it_changes_at_most_once_a_second() -> None:
    stream = io.StringIO()
    screen = Screen(stream, interactive=False)
    screen.status("events 1", 0.0)
    screen.status("events 3", 0.5)  # changed, but within a second of the last line: held...
    screen.status("events 4", 0.8)  # ...and replaced by a newer one...
    screen.status("events 4", 1.5)  # ...printed once a second has passed
    screen.status("events 4", 1.7)  # unchanged: not printed again
    screen.status("events 7", 2.0)  # within a second again: held...
    screen.end_status()  # ...and printed at the end, as the last one always is
    lines = stream.getvalue().splitlines()
    assert lines == ["  [  0.0 s] events 1", "  [  1.5 s] events 4", "  [  2.0 s] events 7"]
    assert "\x1b[" not in stream.getvalue()  # no colours, no redrawing


def test_a_reader_that_goes_away_ends_the_story_quietly() -> None:
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError

    screen = Screen(Closed(), interactive=False)
    screen.say("one")  # no exception: the demo goes on to clean up
    screen.say("two")


@pytest.mark.parametrize(
    ("progress", "settled", "missing"),
    [
        (Progress(events=9, issues=2, findings=2), False, "only 9 of 10 events were stored"),
        (
            Progress(events=10, issues=2, findings=1),
            False,
            "only 1 of 2 issues have a finding",
        ),
        (
            Progress(events=10, issues=2, findings=2, unsettled=1),
            False,
            "1 alerts were still on their way",
        ),
        (
            Progress(events=10, issues=2, findings=2, pending=3),
            False,
            "3 alerts were still on their way",
        ),
        (Progress(events=10, issues=2, findings=2, delivered=4), True, None),
    ],
)
def test_the_pipeline_has_settled_only_when_every_stage_is_done(
    progress: Progress, settled: bool, missing: str | None
) -> None:
    assert progress.settled(10) is settled
    if missing is not None:
        assert progress.missing(10) == missing
