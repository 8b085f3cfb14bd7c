"""Regular expressions over alert labels, run by RE2 (linear time, as in Alertmanager)."""

from __future__ import annotations

import re2

__all__ = ["LabelPattern"]

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the refusal is raised, not also written to stderr


class LabelPattern:
    """A regular expression that label values are matched against whole. RE2 takes time
    linear in the value, so a value a producer sends cannot stall the alert worker the way
    ``(a|aa)*b`` stalls Python's backtracking ``re``."""

    __slots__ = ("_compiled", "pattern")

    def __init__(self, pattern: str) -> None:
        """``pattern`` compiled; ValueError saying why when RE2 refuses it."""
        try:
            self._compiled = re2.compile(pattern, _OPTIONS)
        except re2.error as exc:
            reason = exc.args[0] if exc.args else exc
            if isinstance(reason, bytes):
                reason = reason.decode(errors="replace")
            raise ValueError(f"{reason} (RE2 syntax: no backreferences or lookarounds)") from None
        #: The expression as written.
        self.pattern = pattern

    def fullmatch(self, value: str) -> bool:
        """Whether the whole of ``value`` matches."""
        return self._compiled.fullmatch(value) is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelPattern) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        return f"LabelPattern({self.pattern!r})"
