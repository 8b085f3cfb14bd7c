from __future__ import annotations

import logging
import os
import random
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mendline.ingest import ErrorEventProcessor, make_shipper
from mendline.ingest.app import Capture, EventBuilder, Spool
from mendline.schemas.settings import load_settings


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


def test_a_live_process_adopts_what_exited_ones_left_and_leaves_live_slots_alone(
    tmp_path: Path,
) -> None:
    adopter = Spool(tmp_path, max_bytes=10_000_000)
    adopter.append(records(0, 2))
    dead = Spool(tmp_path, max_bytes=10_000_000, segment_bytes=1024)
    dead.append(records(100, 30))  # several segments
    dead.append(records(130, 30))
    live = Spool(tmp_path, max_bytes=10_000_000)
    live.append(records(200, 3))
    dead.close()  # as the kernel does when the process dies (a child's os._exit)
    assert adopter.adopt_orphans() == 60
    assert drain(adopter) == [0, 1, *range(100, 160)]
    assert not list(dead.path.glob("*.spool"))
    assert adopter.adopt_orphans() == 0  # nothing is adopted twice
    assert drain(live) == [200, 201, 202]  # a live owner's records stay its own


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


# -- privacy: the spool holds the app's error events -----------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture(params=[0o000, 0o277], ids=["umask-000", "umask-277"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """A umask that would make mkdir/open's modes too open (000) or unusably narrow (277)."""
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_folders_are_0700_and_files_0600_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    shipper = make_shipper(
        load_settings(kafka_bootstrap="127.0.0.1:1", spool_dir=tmp_path / "spool"),
        service="billing",
    )
    ErrorEventProcessor(shipper=shipper)(None, "error", {"event": "charge failed"})
    shipper.shutdown(1)  # Kafka is down: the event goes to the shipper's spool
    assert shipper.stats.spooled == 1
    spool = Spool(shipper.spool_root, max_bytes=10_000_000, segment_bytes=1024)
    assert len(spool) == 1  # took over the shipper's slot
    spool.peek(1)
    spool.consume_peeked()
    spool.append(records(0, 40))
    spool.peek(3)
    spool.consume_peeked()
    spool.push_front(records(100, 2))  # rewrites the head segment through a temporary file
    folders = [tmp_path / "spool", shipper.spool_root, spool.path]
    files = [spool.path / ".lock", *spool.path.glob("*.spool")]
    assert len(files) > 2
    assert {str(p): oct(mode(p)) for p in folders} == {str(p): "0o700" for p in folders}
    assert {str(p): oct(mode(p)) for p in files} == {str(p): "0o600" for p in files}
    assert drain(spool) == [100, 101, *range(3, 40)]


def test_folders_and_files_of_ours_left_too_open_are_tightened(tmp_path: Path) -> None:
    first = Spool(tmp_path / "svc", max_bytes=10_000_000)
    first.append(records(0, 3))
    first.close()
    segment = next(first.path.glob("*.spool"))
    for path, loose in [(tmp_path / "svc", 0o755), (first.path, 0o777)]:
        os.chmod(path, loose)
    for path in [first.path / ".lock", segment]:
        os.chmod(path, 0o666)
    second = Spool(tmp_path / "svc", max_bytes=10_000_000)
    assert second.path == first.path
    second.append(records(3, 1))
    assert [oct(mode(p)) for p in (tmp_path / "svc", second.path)] == ["0o700"] * 2
    assert [oct(mode(p)) for p in (second.path / ".lock", segment)] == ["0o600"] * 2
    assert drain(second) == [0, 1, 2, 3]


def test_a_spool_root_that_was_there_keeps_its_mode(tmp_path: Path) -> None:
    # MENDLINE_SPOOL_DIR may name a folder others use: it is not chmodded; the service's
    # folder in it is private.
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    shipper = make_shipper(
        load_settings(kafka_bootstrap="127.0.0.1:1", spool_dir=shared), service="billing"
    )
    ErrorEventProcessor(shipper=shipper)(None, "error", {"event": "charge failed"})
    shipper.shutdown(2)
    assert oct(mode(shared)) == "0o755"
    assert [oct(mode(p)) for p in shared.iterdir()] == ["0o700"]  # the service's folder
    assert shipper.stats.spooled == 1


@pytest.fixture
def foreign_dir(tmp_path: Path) -> Path:
    """A folder that belongs to another user (uid 65534, nobody)."""
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    path = tmp_path / "theirs"
    path.mkdir(mode=0o777)
    os.chmod(path, 0o777)
    os.chown(path, 65534, 65534)
    return path


def test_a_spool_folder_someone_else_owns_is_refused_not_written(foreign_dir: Path) -> None:
    with pytest.raises(PermissionError, match="not us"):
        Spool(foreign_dir, max_bytes=10_000_000)
    assert list(foreign_dir.iterdir()) == []
    assert oct(mode(foreign_dir)) == "0o777"  # not ours to change either


def test_the_shipper_warns_once_and_runs_without_a_spool_it_cannot_trust(
    foreign_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shipper = make_shipper(
        load_settings(kafka_bootstrap="127.0.0.1:1", spool_dir=foreign_dir), service="billing"
    )
    processor = ErrorEventProcessor(shipper=shipper)
    with caplog.at_level(logging.WARNING, logger="mendline.ingest"):
        for n in range(3):
            event_dict = {"event": "charge failed", "n": n}
            assert processor(None, "error", event_dict) is event_dict  # the app goes on
        shipper.shutdown(2)
    refusals = [r.getMessage() for r in caplog.records if "no disk spool" in r.getMessage()]
    assert len(refusals) == 1 and "not us" in refusals[0], caplog.text
    assert list(foreign_dir.iterdir()) == []  # nothing spooled into their folder
    assert shipper.stats.spooled == 0


def test_a_symlink_where_the_lock_file_goes_is_refused(tmp_path: Path) -> None:
    slot = tmp_path / "spool" / "slot-0"
    slot.mkdir(parents=True)
    target = tmp_path / "elsewhere.txt"
    (slot / ".lock").symlink_to(target)  # dangling: following it would create the target
    with pytest.raises(OSError, match="symlink; refused"):
        Spool(tmp_path / "spool", max_bytes=10_000_000)
    assert not target.exists()


def test_a_symlink_where_a_slot_goes_is_refused(tmp_path: Path) -> None:
    (tmp_path / "spool").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "spool" / "slot-0").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError, match="a symlink"):
        Spool(tmp_path / "spool", max_bytes=10_000_000)
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_a_symlink_found_as_a_segment_is_neither_read_nor_truncated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = Spool(tmp_path, max_bytes=10_000_000)
    first.close()
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"k1 precious\nno newline at the end")
    planted = first.path / f"{1_000_000_000:012d}.spool"
    planted.symlink_to(victim)
    with caplog.at_level(logging.WARNING, logger="mendline.ingest"):
        second = Spool(tmp_path, max_bytes=10_000_000)
    assert "symlink; refused" in caplog.text
    assert len(second) == 0  # its line was not read as a record
    second.append(records(0, 2))
    assert victim.read_bytes() == b"k1 precious\nno newline at the end"
    assert not planted.is_symlink()  # the link was removed, and the segment is a real file
    assert drain(second) == [0, 1]


def test_a_symlink_planted_where_the_next_segment_goes_is_not_written_through(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000, segment_bytes=1024)
    spool.append(records(0, 40))  # fills the first segment
    newest = max(spool.path.glob("*.spool"))
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    planted = newest.with_name(f"{int(newest.stem) + 1:012d}.spool")
    planted.symlink_to(victim)
    with pytest.raises(OSError, match="symlink; refused"):
        spool.append(records(40, 40))
    assert victim.read_bytes() == b"precious"


def test_a_symlink_planted_as_the_temporary_file_is_not_written_through(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000)
    spool.append(records(0, 5))
    spool.peek(2)
    spool.consume_peeked()
    head = next(spool.path.glob("*.spool"))
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    head.with_suffix(".tmp").symlink_to(victim)
    spool.push_front(records(10, 1))  # compacts the head through <head>.tmp
    assert victim.read_bytes() == b"precious"
    assert drain(spool) == [10, 2, 3, 4]


# -- event ids (they are the spool's record keys) --------------------------------------------


def capture() -> Capture:
    return Capture.now("error", "app", "boom", {}, None)


def test_event_ids_are_distinct_uuid4s() -> None:
    builder = EventBuilder("billing", "test", host="h")
    ids = [builder.build(capture())["event_id"] for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for event_id in ids:
        parsed = uuid.UUID(hex=event_id)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert parsed.hex == event_id


def test_event_ids_do_not_come_from_the_random_modules_guessable_generator() -> None:
    builder = EventBuilder("billing", "test", host="h")
    random.seed(1234)
    first = builder.build(capture())["event_id"]
    random.seed(1234)  # the same Mersenne Twister state: its output repeats
    second = builder.build(capture())["event_id"]
    assert first != second
