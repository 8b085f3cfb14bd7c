"""GroupCommit, how the alert worker records what became of its sends: in order, in batches
as large as what came while the last write ran, and nothing lost from sight when a write
fails or the worker stops."""

from __future__ import annotations

import asyncio

import pytest

from mendline.stages._group_commit import GroupCommit


class Writes:
    """A write that holds each batch until ``release``d, recording the batches."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.started = asyncio.Event()
        self._go = asyncio.Event()
        self._fail_at = fail_at

    def release(self) -> None:
        self._go.set()

    async def __call__(self, batch: list[int]) -> None:
        self.started.set()
        await self._go.wait()
        if self._fail_at in batch:
            raise RuntimeError("constraint violated")
        self.batches.append(list(batch))


async def test_what_comes_while_a_write_runs_goes_in_the_next_batch_in_order() -> None:
    write = Writes()
    marks: GroupCommit[int] = GroupCommit(write)
    marks.add(1)  # written at once, alone
    await write.started.wait()
    for n in (2, 3, 4):
        marks.add(n)
    assert marks.unwritten == [1, 2, 3, 4]
    write.release()
    await marks.flush()
    assert write.batches == [[1], [2, 3, 4]]
    assert marks.unwritten == []
    marks.add(5)
    await marks.flush()
    assert write.batches[-1] == [5]


async def test_a_failed_write_keeps_its_batch_unwritten_and_says_so() -> None:
    write = Writes(fail_at=2)
    marks: GroupCommit[int] = GroupCommit(write)
    marks.add(1)
    await write.started.wait()
    marks.add(2)
    marks.add(3)
    write.release()
    with pytest.raises(RuntimeError, match="constraint"):
        await marks.flush()
    assert write.batches == [[1]]
    assert marks.unwritten == [2, 3]
    with pytest.raises(RuntimeError):
        marks.add(4)  # nothing more is written after a failure, and that is said
    assert marks.unwritten == [2, 3, 4]
    marks.abandon()
    await marks.flush()  # a worker stopping is not turned into the write's error


async def test_abandoned_it_stops_writing_and_leaves_the_rest_unwritten() -> None:
    write = Writes()
    marks: GroupCommit[int] = GroupCommit(write)
    marks.add(1)
    await write.started.wait()
    marks.add(2)
    marks.abandon()
    await marks.flush()  # at once: the write running is cancelled
    await asyncio.sleep(0)
    write.release()
    await asyncio.sleep(0)
    assert write.batches == []
    assert marks.unwritten == [1, 2]
