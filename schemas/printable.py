"""Text from outside (events, check responses) made safe to show: every control character
written as a visible escape."""

from __future__ import annotations

import re

__all__ = ["printable"]

# What could steer a terminal or hide text: C0 controls (ESC starts an escape sequence, CR and
# BS overwrite, ...), DEL, C1 controls (\x9b is a one-byte CSI on some terminals) and Unicode's
# Bidi_Control characters (U+202E shows the rest of a line backwards).
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_BIDI}]")
_CONTROL_BUT_LINES = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{_BIDI}]")  # keeps \t, \n
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(text: object, *, lines: bool = False) -> str:
    """``text`` (or its str()) safe to print on a terminal: every control character written
    as a visible escape (ESC as ``\\x1b``, a newline as ``\\n``, U+202E as
    ``\\u202e``), other characters kept.

    Text from events is anyone's (any producer writes to the topic), so whatever the CLI shows
    of it goes through here. With ``lines``, newlines and tabs are kept, for text printed as
    several lines (a patch); otherwise they are escaped too. Backslashes are kept as they are,
    so escaping twice changes nothing.
    """
    return (_CONTROL_BUT_LINES if lines else _CONTROL).sub(_visible, str(text))
