"""What the commands print: JSON for scripts; tables, colour and a status line for people;
the workers' log lines; errors with a hint."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from mendline.schemas.finding import RISK_WORDS, confidence_label
from mendline.schemas.printable import printable
from mendline.schemas.redaction import redact_url

if TYPE_CHECKING:
    from mendline.sinks.postgres import StoredFinding

__all__ = [
    "STYLES",
    "JsonLogFormatter",
    "Screen",
    "colour_for",
    "counted",
    "describe",
    "log_to_stderr",
    "print_done",
    "print_error",
    "print_json",
    "print_problems",
    "print_traceback",
    "printable",
    "shorten",
    "styled",
    "table",
]

#: The named styles of ``styled`` as SGR codes: emphasis, colours, and the level names people
#: scan for (info, the ordinary case, stays plain).
STYLES = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "magenta": "35",
    "cyan": "36",
    "critical": "1;31",
    "error": "31",
    "warning": "33",
    "info": "",
}
_LEVELS = ("critical", "error", "warning", "info")


def counted(number: int, thing: str, plural: str | None = None) -> str:
    """``number`` and ``thing``, plural unless one: ``3 routes``, ``1 broker``; ``plural``
    when adding an s will not do (``2 repositories``)."""
    if number == 1:
        return f"{number} {thing}"
    return f"{number} {plural or thing + 's'}"


def print_json(value: Any) -> None:
    """``value`` as one line of JSON on stdout (dates and other objects as their str())."""
    # ensure_ascii (the default, kept on purpose) writes every control character and every
    # non-ASCII one as a \u escape: stored text cannot reach a terminal raw through --json.
    print(json.dumps(value, default=str, ensure_ascii=True))


def print_done(args: argparse.Namespace, text: str, **what: object) -> None:
    """What a command changed: ``text`` for people, ``what`` as a JSON object for scripts."""
    if args.json:
        print_json(what)
    else:
        print(text)


def print_error(message: str, hint: str | None, prog: str = "mendline") -> None:
    """An error on stderr: ``<prog>: <message>``, then ``hint: <hint>`` on its own line. A
    message of several lines (every problem of a checks or routes file, each
    ``FILE:LINE: field: message``) is one ``<prog>: `` line each.

    Both are shown ``printable`` (an error may quote input: a file, a line, a URL) and with
    the secrets of URLs and DSNs filtered (``redact_url``).
    """
    for line in message.splitlines() or [""]:
        print(f"{prog}: {printable(redact_url(line))}", file=sys.stderr)
    if hint:
        print(f"hint: {printable(redact_url(hint))}", file=sys.stderr)


def print_problems(args: argparse.Namespace, source: str, error: Exception, hint: str) -> int:
    """Every problem of a file that is not valid (``error``'s lines, each ``FILE:LINE: field:
    message``): on stderr with ``hint`` (the usual one-line error would hide all but one), or
    with ``--json`` as ``{"source", "valid": false, "problems"}``. Returns 1, the exit status."""
    if args.json:
        print_json({"source": source, "valid": False, "problems": str(error).splitlines()})
    else:
        print_error(str(error), hint)
    return 1


def print_traceback(exc: BaseException) -> None:
    """``exc``'s traceback (``--debug``) on stderr, with the secrets of URLs and DSNs in it
    filtered: a driver's exception may hold the URL it was given, password and all."""
    text = "".join(traceback.format_exception(exc))
    sys.stderr.write(printable(redact_url(text), lines=True))
    sys.stderr.flush()


def colour_for(stream: TextIO) -> bool:
    """Whether to colour ``stream``: a terminal, and NO_COLOR (no-color.org) unset or empty."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def styled(text: str, style: str | None, colour: bool) -> str:
    """``text`` in the named ``style`` (one of ``STYLES``) when ``colour``; else as it is."""
    code = STYLES[style] if style else ""
    return f"\x1b[{code}m{text}\x1b[0m" if colour and code else text


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Rows as columns aligned under ``header``; numbers to the right, the last column ragged.

    Each cell is shown ``printable``, on one line.

    With colour (see ``colour_for``), the header is bold and level names are coloured.
    """
    cells = [[printable(c) for c in header], *([printable(c) for c in row] for row in rows)]
    numeric = [all(c.isdigit() for c in column[1:]) for column in zip(*cells, strict=True)]
    widths = [max(len(c) for c in column) for column in zip(*cells, strict=True)]
    colour = colour_for(sys.stdout)
    lines = []
    for n, row in enumerate(cells):
        shown = []
        for i, cell in enumerate(row):
            last = i == len(row) - 1
            padded = cell.rjust(widths[i]) if numeric[i] else cell
            padded = padded if last else padded.ljust(widths[i])
            style = "bold" if n == 0 else cell if cell in _LEVELS else None
            shown.append(styled(padded, style, colour))
        lines.append("  ".join(shown).rstrip())
    return "\n".join(lines)


def shorten(text: str | None, width: int) -> str:
    """``text`` on one line, ``printable``, cut to ``width`` characters with an ellipsis."""
    line = printable(" ".join((text or "").split()))
    return line if len(line) <= width else line[: width - 1] + "…"


_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class Screen:
    """The demo's story: lines, and in a terminal a status line redrawn in place, in colour.

    Off a terminal, the status is printed as a line when it changes, at most once a second of
    the demo's own clock (the ``seconds`` it is given), and the last one always. A reader
    that goes away (``mendline demo | head``) ends the story, not the demo's clean-up.
    """

    def __init__(self, stream: TextIO, *, interactive: bool) -> None:
        self._stream: TextIO | None = stream
        self._interactive = interactive
        self._colour = interactive and colour_for(stream)
        self._status = ""
        self._last_plain = ""
        self._last_plain_at = -1.0
        self._pending = ""

    @property
    def colour(self) -> bool:
        """Whether the story is told in colour (styled text may be said as it is)."""
        return self._colour

    def say(self, text: str, style: str | None = None) -> None:
        """A line of the story, above the status line."""
        text = styled(text, style, self._colour)
        if self._interactive and self._status:
            self._write("\r\x1b[K" + text + "\n" + self._status)
        else:
            self._write(text + "\n")

    def status(self, text: str, seconds: float) -> None:
        """Where things are, ``seconds`` into the demo."""
        if self._interactive:
            spinner = _SPINNER[int(seconds * 4) % len(_SPINNER)]
            self._status = f"  {spinner} {text}  ({seconds:.1f} s)"
            self._write("\r\x1b[K" + self._status)
            return
        if text == self._last_plain:
            self._pending = ""  # back to what was printed last: nothing new to say
            return
        self._pending = f"  [{seconds:5.1f} s] {text}"
        if seconds - self._last_plain_at >= 1.0:
            self._last_plain, self._last_plain_at = text, seconds
            self._flush_pending()

    def end_status(self) -> None:
        """Leave the last status on its own line."""
        if self._interactive and self._status:
            self._write("\n")
            self._status = ""
        elif not self._interactive:
            self._flush_pending()

    def _flush_pending(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, ""
            self.say(pending)

    def _write(self, text: str) -> None:
        if self._stream is None:
            return
        try:
            self._stream.write(text)
            self._stream.flush()
        except BrokenPipeError:
            self._stream = None  # nobody reads any more; the demo still cleans up


def log_to_stderr(args: argparse.Namespace) -> None:
    """The workers' logging: lines on stderr, JSON objects with --json, DEBUG with --debug."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonLogFormatter()
        if args.json
        else _RedactingFormatter("%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s")
    )
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, handlers=[handler])
    logging.getLogger("aiokafka").setLevel(logging.WARNING if args.debug else logging.CRITICAL)
    # asyncpg's pool says every few seconds of an outage, with a traceback, that it cannot
    # reconnect; the stages say it once an outage themselves.
    logging.getLogger("asyncpg.pool").setLevel(logging.WARNING if args.debug else logging.ERROR)


class _RedactingFormatter(logging.Formatter):
    """A log line, and its traceback, with the secrets of URLs and DSNs filtered."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_url(super().format(record))


class JsonLogFormatter(logging.Formatter):
    """A log record as one JSON object: time, level, logger, message, and exception if any,
    with the secrets of URLs and DSNs filtered (``redact_url``)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact_url(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = redact_url(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact_url(record.exc_text)
        return json.dumps(entry, default=str)


def describe(stored: StoredFinding, served: bool = False) -> str:
    """A finding as people read it on a terminal: every field that came from an event or a
    model escaped on its own line (a root cause with a newline cannot fake a line of ours);
    a patch keeps its lines, each escaped."""
    f = stored.finding
    p = printable
    by = (
        f"the LLM ({p(f.model or '')})"
        if f.analyser == "llm"
        else f"the heuristic analyser ({p(f.rule or '')})"
    )
    lines = [
        f"finding #{stored.id} for issue #{stored.issue_id}, by {by}"
        + (f", served from finding #{stored.cached_from}" if stored.cached_from else "")
        + (" (stored earlier)" if served else ""),
        f"  category    {f.category}    severity {f.severity}    confidence"
        f" {confidence_label(f.confidence)}",
        f"  root cause  {p(f.root_cause)}",
        f"  fix         {p(f.suggested_fix)}",
    ]
    if f.risks:
        # Before the fix and patch are acted on: an LLM wrote them after reading event text.
        lines.append(
            "  WARNING     check before acting: "
            + "; ".join(f"{RISK_WORDS[r]} [{r}]" for r in f.risks)
        )
    if f.fix_kind:
        lines.append(f"  fix kind    {f.fix_kind}")
    for item in f.evidence:
        lines.append(f"  evidence    {p(item.location)}: {p(item.note)}")
        if item.line:
            lines.append(f"                {p(item.line)}")
    if f.fix_patch:
        lines.append("  patch:")
        lines.extend("    " + p(line) for line in f.fix_patch.splitlines())
    if f.fallback_code is not None:
        lines.append(
            f"  note        the LLM was not used: {p(f.fallback_reason or '')} [{f.fallback_code}]"
        )
    if f.prompt_tokens is not None:
        lines.append(
            f"  usage       {f.prompt_tokens} + {f.completion_tokens} tokens, "
            f"${f.cost_usd or 0:.6f}, {f.latency_ms} ms"
        )
    if stored.verdict:
        lines.append(
            f"  verdict     {stored.verdict}"
            + (f": {p(stored.verdict_note)}" if stored.verdict_note else "")
        )
    return "\n".join(lines)
