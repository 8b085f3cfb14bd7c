from __future__ import annotations

import os
from pathlib import Path

from mendline.ingest.app import Spool


def records(start: int, count: int, size: int = 10) -> list[tuple[bytes, bytes]]:
    return [
        (f"{i:032x}".encode(), b'{"n":%d,"pad":"%s"}' % (i, b"x" * size))
        for i in range(start, start + count)
    ]


def drain(spool: Spool) -> list[int]:
    seen = []
    while len(spool):
        batch = spool.peek(7)
        seen.extend(int(key, 16) for key, _ in batch)
        spool.consume_peeked()
    return seen


def test_records_come_back_oldest_first_across_segments(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000, segment_bytes=1024)
    spool.append(records(0, 50))
    spool.append(records(50, 50))
    assert len(list(spool.path.glob("*.spool"))) > 1
    assert drain(spool) == list(range(100))
    assert not list(spool.path.glob("*.spool"))


def test_push_front_goes_before_everything_even_mid_segment(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000, segment_bytes=1024)
    spool.append(records(10, 20))
    spool.peek(5)
    spool.consume_peeked()  # 10..14 sent
    spool.push_front(records(0, 3))  # failed ones, older than the rest
    assert drain(spool) == [0, 1, 2, *range(15, 30)]


def test_cap_drops_oldest_and_counts_them(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=4096, segment_bytes=1024)
    lost = sum(spool.append(records(i, 1, size=200)) for i in range(100))
    assert lost == spool.dropped > 0
    remaining = drain(spool)
    assert len(remaining) + lost == 100
    assert remaining == list(range(lost, 100))  # the newest survive, in order


def test_a_restarted_process_takes_over_what_the_dead_one_left(tmp_path: Path) -> None:
    first = Spool(tmp_path, max_bytes=10_000_000)
    first.append(records(0, 5))
    slot = first.path
    first.close()  # as the kernel does when the process dies
    second = Spool(tmp_path, max_bytes=10_000_000)
    assert second.path == slot
    assert drain(second) == list(range(5))


def test_two_live_owners_get_different_slots(tmp_path: Path) -> None:
    first = Spool(tmp_path, max_bytes=10_000_000)
    second = Spool(tmp_path, max_bytes=10_000_000)
    assert first.path != second.path
    first.append(records(0, 1))
    assert len(second) == 0


def test_forked_child_does_not_steal_the_parents_slot(tmp_path: Path) -> None:
    parent = Spool(tmp_path, max_bytes=10_000_000)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child drops its inherited handle and takes a slot of its own
        parent.abandon()
        child = Spool(tmp_path, max_bytes=10_000_000)
        os.write(write, child.path.name.encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child_slot = os.read(read, 100).decode()
    assert child_slot != parent.path.name
    # and the parent still holds its slot after the child closed its copy of the lock
    assert Spool(tmp_path, max_bytes=10_000_000).path != parent.path


def test_a_record_cut_short_by_a_kill_is_dropped_and_the_rest_survive(tmp_path: Path) -> None:
    first = Spool(tmp_path, max_bytes=10_000_000)
    first.append(records(0, 3))
    segment = next(first.path.glob("*.spool"))
    first.close()
    with segment.open("ab") as handle:  # the process died in the middle of a write
        handle.write(b'00000000000000000000000000000003 {"n":3,"pa')
    second = Spool(tmp_path, max_bytes=10_000_000)
    assert len(second) == 3
    second.append(records(4, 2))  # not glued onto the partial line
    assert drain(second) == [0, 1, 2, 4, 5]
    assert len(second) == 0
