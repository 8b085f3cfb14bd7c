"""Writes that many tasks make, one batch at a time: a group commit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

_T = TypeVar("_T")


class GroupCommit(Generic[_T]):
    """Writes what is added, in order, in batches: the first item added is written at once;
    what is added while a write runs goes in the next one, all together. Quiet, an item
    waits for no other; busy, the batches grow with the load.

    ``write`` writes a batch (and waits out what it should). After it raised, nothing more
    is written: ``add`` and ``flush`` raise that error, and what was not written stays in
    ``unwritten``.
    """

    def __init__(self, write: Callable[[list[_T]], Awaitable[None]]) -> None:
        self._write = write
        self._queued: list[_T] = []
        self._writing: list[_T] = []
        self._task: asyncio.Task[None] | None = None
        self._error: Exception | None = None
        self._abandoned = False

    @property
    def unwritten(self) -> list[_T]:
        """What was added and is not written yet (being written included)."""
        return [*self._writing, *self._queued]

    def add(self, item: _T) -> None:
        """Queue ``item``; a write starts now if none is running. After a failed write, it
        is kept in ``unwritten`` and that error raised."""
        self._queued.append(item)
        if self._error is not None:
            raise self._error
        if self._task is None and not self._abandoned:
            self._task = asyncio.create_task(self._drain())

    async def flush(self) -> None:
        """Return when all that was added is written (at once, once abandoned); raise what a
        write raised (not once abandoned: a stop is not turned into that error)."""
        if self._abandoned:
            return
        while self._task is not None:
            await self._task
        if self._error is not None:
            raise self._error

    def abandon(self) -> None:
        """Stop writing (the write running is cancelled); what is left stays unwritten."""
        self._abandoned = True
        if self._task is not None:
            self._task.cancel()

    async def _drain(self) -> None:
        try:
            while self._queued:
                self._writing, self._queued = self._queued, []
                await self._write(self._writing)
                self._writing = []
        except Exception as exc:
            self._error = exc
        finally:
            self._task = None
