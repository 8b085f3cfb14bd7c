"""The one interface every root-cause analyser implements."""

from __future__ import annotations

from typing import Protocol

from mendline.schemas.finding import Finding, IssueContext

__all__ = ["Analyser"]


class Analyser(Protocol):
    """Given an issue and a few of its events, say what most likely caused it."""

    async def analyse(self, context: IssueContext) -> Finding:
        """A Finding for ``context``; never raises for a well-formed context."""
        ...
