"""Rolling up an error storm at the edge: what is one error, what is sent in full, what is
counted, and that the counts stay exact under threads and at a fork (no Kafka: the spool)."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mendline.ingest import Capture, RawException, Shipper
from mendline.ingest.app import EventBuilder
from mendline.ingest.app._rollup import RollUp, rollup_key
from mendline.schemas.event import parse_event_dict
from mendline.schemas.limits import MAX_MESSAGE_BYTES
from mendline.schemas.settings import load_settings

FRAMES = [("/srv/app/orders.py", "app.orders", "place", 12), ("/srv/app/q.py", "app.q", "qty", 7)]


def exc(type_: str = "ValueError", value: str = "bad", frames: list[Any] | None = None) -> Any:
    return RawException(type_, "builtins", value, FRAMES if frames is None else frames, 0)


def capture(at: float = 100.0, **changes: Any) -> Capture:
    base = Capture(at, "error", "app.orders", "order_failed", {"n": 1}, [exc()])
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize(
    ("other", "same"),
    [
        (capture(context={"n": 2, "request_id": "r-9"}), True),  # context is not the error
        (capture(exceptions=[exc(value="other value")]), True),  # frames say which error
        (capture(at=101.0), True),
        (capture(level="critical"), False),
        (capture(logger="app.billing"), False),
        (capture(message="payment_failed"), False),
        (capture(exceptions=[exc("KeyError")]), False),
        (
            capture(exceptions=[exc(frames=[*FRAMES[:1], ("/srv/app/q.py", "app.q", "qty", 8)])]),
            False,
        ),
        (capture(exceptions=[exc(frames=FRAMES[:1])]), False),
        (capture(exceptions=[exc(), exc("KeyError")]), False),
        (capture(exceptions=[]), False),
        (capture(fingerprint=["orders"]), False),
        (capture(tags={"tenant": "a"}), False),
    ],
)
def test_what_is_the_same_error(other: Capture, same: bool) -> None:
    assert (rollup_key(other) == rollup_key(capture())) is same


@pytest.mark.parametrize(
    ("one", "two", "same"),
    [
        # Without frames, the value tells errors apart (as grouping does then).
        (
            capture(exceptions=[exc(frames=[])]),
            capture(exceptions=[exc(value="x", frames=[])]),
            False,
        ),
        (capture(exceptions=[exc(frames=[])]), capture(exceptions=[exc(frames=[])]), True),
        (capture(tags={"tenant": "a"}), capture(tags={"tenant": "b"}), False),
        (capture(fingerprint=["a", "b"]), capture(fingerprint=["a", "b"]), True),
    ],
)
def test_what_is_the_same_error_pairs(one: Capture, two: Capture, same: bool) -> None:
    assert (rollup_key(one) == rollup_key(two)) is same


@pytest.mark.parametrize(
    ("one", "two"),
    [
        # Equal in Python, but the events carry their text: two fingerprints, two issues.
        (capture(fingerprint=["retry", 1]), capture(fingerprint=["retry", True])),
        (capture(fingerprint=["retry", 1]), capture(fingerprint=["retry", 1.0])),
        (capture(tags={"timeout": 1}), capture(tags={"timeout": 1.0})),
        (capture(tags={"zero": 0.0}), capture(tags={"zero": -0.0})),
    ],
)
def test_values_equal_in_python_but_written_apart_are_different_errors(
    one: Capture, two: Capture
) -> None:
    builder = EventBuilder("svc", "test", host="h")
    assert builder.build(one) != builder.build(two) | {"event_id": builder.build(one)["event_id"]}
    assert rollup_key(one) != rollup_key(two)


@pytest.mark.parametrize(
    "keyed",
    [capture(fingerprint=[["a list"]]), capture(tags={"tenant": ["a", "list"]})],
)
def test_unhashable_fingerprints_and_tags_are_keyed_by_their_text(keyed: Capture) -> None:
    assert rollup_key(keyed) == rollup_key(dataclasses.replace(keyed))


@pytest.mark.parametrize("unkeyed", [capture(message={"event": "a dict"}), capture(message=b"x")])
def test_what_cannot_be_keyed_is_always_sent_in_full(unkeyed: Capture) -> None:
    assert rollup_key(unkeyed) is None


def admit_all(rollup: RollUp, captures: list[Capture]) -> list[bool]:
    admitted = []
    for each in captures:
        key = rollup_key(each)
        assert key is not None
        admitted.append(rollup.admit(key, each, each.timestamp))
    return admitted


def test_two_errors_whose_keys_hash_alike_are_never_merged() -> None:
    rollup = RollUp(window=1.0, full=1)
    one, two = capture(message="one"), capture(message="two")
    assert rollup.admit((7, "one"), one, 0.0) and not rollup.admit((7, "one"), one, 0.0)
    assert [rollup.admit((7, "two"), two, 0.0) for _ in range(3)] == [True] * 3  # each in full
    (rolled,) = rollup.drain()
    assert (rolled.message, rolled.count) == ("one", 1)


def test_the_first_few_go_in_full_and_the_rest_become_one_event_with_their_count() -> None:
    rollup = RollUp(window=1.0, full=3)
    storm = [capture(at=100.0 + n * 0.01, context={"n": n}) for n in range(50)]
    assert admit_all(rollup, storm) == [True] * 3 + [False] * 47
    assert rollup.pending() == 47
    assert rollup.closed(100.99) == []  # the window is still open
    (rolled,) = rollup.closed(101.0)
    assert (rolled.count, rolled.first_timestamp, rolled.timestamp) == (47, 100.03, 100.49)
    assert rolled.context == {"n": 49}  # the last of them stands for them
    assert len(rollup) == 0 and rollup.pending() == 0
    # the next occurrence opens a new window: in full again
    assert admit_all(rollup, [capture(at=101.5)]) == [True]


def test_distinct_errors_each_keep_their_own_window() -> None:
    rollup = RollUp(window=1.0, full=2)
    kinds = [capture(exceptions=[exc(f"Error{k}")]) for k in range(5)]
    sent = admit_all(
        rollup, [dataclasses.replace(kinds[n % 5], timestamp=100 + n / 1000) for n in range(100)]
    )
    assert sent.count(True) == 10  # two of each kind
    rolled = rollup.drain()
    assert sorted((r.exceptions[0].type, r.count) for r in rolled) == [
        (f"Error{k}", 18) for k in range(5)
    ]


def test_a_window_that_ended_but_was_not_collected_keeps_counting() -> None:
    rollup = RollUp(window=1.0, full=1)
    assert admit_all(rollup, [capture(at=100.0), capture(at=100.5), capture(at=102.0)]) == [
        True,
        False,
        False,
    ]
    (rolled,) = rollup.closed(103.0)
    assert (rolled.count, rolled.first_timestamp, rolled.timestamp) == (2, 100.5, 102.0)


def test_a_window_with_nothing_counted_yields_no_event_and_reopens() -> None:
    rollup = RollUp(window=1.0, full=5)
    assert admit_all(rollup, [capture(at=100.0), capture(at=100.1)]) == [True, True]
    assert rollup.closed(101.0) == []
    assert admit_all(rollup, [capture(at=102.0)] * 5) == [True] * 5


def test_windows_follow_the_monotonic_clock_not_the_timestamps() -> None:
    rollup = RollUp(window=1.0, full=1)
    key = rollup_key(capture())
    assert key is not None
    # The wall clock steps back an hour mid-storm: the window still ends a second on.
    stepped = [capture(at=100.0), capture(at=100.5), capture(at=100.6 - 3600)]
    assert [rollup.admit(key, c, now) for c, now in zip(stepped, (5.0, 5.5, 5.6), strict=True)] == [
        True,
        False,
        False,
    ]
    assert rollup.closed(5.9) == []
    (rolled,) = rollup.closed(6.0)
    assert (rolled.count, rolled.first_timestamp) == (2, 100.5)


def test_past_the_key_limit_every_new_error_is_sent_in_full() -> None:
    rollup = RollUp(window=1.0, full=1, max_keys=3)
    kinds = [capture(message=f"m{k}") for k in range(5)]
    assert admit_all(rollup, kinds + kinds) == [True] * 5 + [False] * 3 + [True] * 2
    assert sorted(r.message for r in rollup.drain()) == ["m0", "m1", "m2"]


def test_a_rolled_up_event_carries_its_count_and_first_timestamp_on_the_wire() -> None:
    builder = EventBuilder("checkout", "production", host="web-1")
    rolled = capture(at=1_764_000_010.5, count=250, first_timestamp=1_764_000_009.25, lost=3)
    _, data = builder.encode(rolled)
    doc = parse_event_dict(data)
    assert (doc["count"], doc["lost"]) == (250, 3)
    assert doc["first_timestamp"] < doc["timestamp"]
    plain = builder.build(capture())
    assert not {"count", "first_timestamp", "lost"} & set(plain)  # v1 as before


def spooled(root: Path) -> list[dict[str, Any]]:
    """Every event closed shippers left in the spool folders of ``root``."""
    return [
        parse_event_dict(line.partition(b" ")[2])
        for path in sorted(root.glob("slot-*/*.spool"))
        for line in path.read_bytes().splitlines()
        if line.strip()
    ]


def in_threads(work: Callable[[int], None], threads: int) -> None:
    """Run ``work(t)`` in ``threads`` threads at once, until all are done."""
    started = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()


def storm_settings(tmp_path: Path, **changes: Any) -> Any:
    # Port 1 refuses at once: every event waits in the spool, where the test reads it.
    values = {"queue_size": 100_000, **changes}
    return load_settings(kafka_bootstrap="127.0.0.1:1", spool_dir=tmp_path / "spool", **values)


def test_threads_storming_are_counted_exactly_and_distinct_errors_never_merge(
    tmp_path: Path,
) -> None:
    settings = storm_settings(tmp_path, rollup_window=60)  # one window, however slow the box
    shipper = Shipper(settings, EventBuilder("storm", "test", host="h"))
    kinds = [[exc(f"Error{k}")] for k in range(20)]

    def worker(t: int) -> None:
        for n in range(2_000):
            shipper.submit(Capture(time.time(), "error", "app", "failed", {"t": t}, kinds[n % 20]))

    in_threads(worker, 4)
    assert shipper.shutdown(10)
    events = spooled(shipper.spool_root)
    occurrences: Counter[str] = Counter()
    for event in events:
        occurrences[event["exceptions"][0]["type"]] += event.get("count", 1)
    assert occurrences == {f"Error{k}": 400 for k in range(20)}
    assert len(events) == 20 * 10 + 20  # ten of each in full, and one rolled-up event each
    stats = shipper.stats
    assert stats.rolled_up == sum(e.get("count", 1) for e in events if e.get("count", 1) > 1)
    assert sum(stats.dropped.values()) == 0


def test_a_full_queue_loses_are_counted_exactly_and_told_by_the_next_event(
    tmp_path: Path,
) -> None:
    settings = storm_settings(tmp_path, queue_size=50, rollup_window=0)
    shipper = Shipper(settings, EventBuilder("flood", "test", host="h"))

    def worker(t: int) -> None:
        for n in range(3_000):
            shipper.submit(capture(message=f"distinct {t} {n}"))

    in_threads(worker, 4)
    assert shipper.shutdown(10)
    stats = shipper.stats
    events = spooled(shipper.spool_root)
    assert stats.received + stats.dropped["queue_full"] == 12_000  # exact under threads
    assert stats.dropped["queue_full"] > 0
    assert len(events) == stats.received
    assert sum(e.get("lost", 0) for e in events) == stats.dropped["queue_full"]


def test_a_forked_child_does_not_send_the_parents_counts_again(tmp_path: Path) -> None:
    shipper = Shipper(storm_settings(tmp_path), EventBuilder("forky", "test", host="h"))
    for _ in range(30):
        shipper.submit(capture(at=time.time()))
    assert shipper.stats.rolled_up == 20  # waiting in the parent's window
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read)
            child = shipper._rollup
            os.write(write, str(0 if child is None else child.pending()).encode())
            code = 0 if shipper.shutdown(5) else 2
        finally:
            os._exit(code)
    os.close(write)
    pending_in_child = int(os.read(read, 100))
    os.close(read)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert pending_in_child == 0
    assert shipper.shutdown(10)
    events = spooled(shipper.spool_root)
    assert sum(e.get("count", 1) for e in events) == 30


def test_what_the_full_spool_drops_is_reported_lost_by_the_occurrences_it_stood_for(
    tmp_path: Path,
) -> None:
    settings = storm_settings(tmp_path, rollup_full=1, rollup_window=60, spool_max_bytes=16_384)
    shipper = Shipper(settings, EventBuilder("dropping", "test", host="h"))
    warm_up = 0
    deadline = time.monotonic() + 20
    while not shipper.stats.spooled:  # Kafka is known down: from now on, events are spooled
        assert time.monotonic() < deadline
        shipper.submit(capture(message=f"warm-up {warm_up}"))
        warm_up += 1
        shipper.flush(0.05)
    storm = 1_000
    for _ in range(storm):  # one in full, 999 counted
        shipper.submit(capture(at=time.time()))
    assert shipper.flush(0.5) is False  # Kafka is down; the count is built and spooled
    distinct = 400
    for n in range(distinct):  # distinct errors fill the small spool: the oldest go
        shipper.submit(capture(message=f"distinct {n}"))
        if n % 50 == 0:
            shipper.flush(0.2)  # let the thread spool them, so that old segments drop
    shipper.submit(capture(message="the last one, to carry what was lost"))
    assert shipper.shutdown(10)
    events = spooled(shipper.spool_root)
    assert shipper.stats.dropped["spool_full"] > 0
    assert all(e.get("count", 1) < storm - 1 for e in events)  # the rolled-up one was dropped
    kept = sum(e.get("count", 1) for e in events)
    reported = sum(e.get("lost", 0) for e in events)
    # What was lost after the last event spooled has no event to tell it: it is in the stats
    # (and a warning) instead. Every occurrence is one of the three, once.
    assert kept + reported + shipper.stats.unreported == warm_up + storm + distinct + 1
    assert reported or shipper.stats.unreported > storm - 1  # the count's weight was lost


def test_a_forked_childs_full_spool_losses_are_reported_by_its_later_events(
    tmp_path: Path,
) -> None:
    shipper = Shipper(
        storm_settings(tmp_path, spool_max_bytes=8_192), EventBuilder("forky", "test", host="h")
    )
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # every submit of a forked child is spooled in the call
        code = 1
        try:
            os.close(read)
            for n in range(300):
                shipper.submit(capture(message=f"child {n}"))
            shipper.shutdown(5)
            stats = shipper.stats
            os.write(write, f"{stats.dropped['spool_full']} {stats.unreported}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    dropped, unreported = map(int, os.read(read, 100).split())
    os.close(read)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    events = spooled(shipper.spool_root)
    shipper.shutdown(1)
    assert dropped > 0
    assert len(events) + sum(e.get("lost", 0) for e in events) + unreported == 300
    assert sum(e.get("lost", 0) for e in events) > 0  # the child's later events told some


def test_an_event_a_cut_made_unclean_is_said_so() -> None:
    builder = EventBuilder("svc", "test", host="h")
    # A run of 20 digits is no card number; cut at the message's limit, its first 16 are.
    run_on = "4111111111111111" + "9999"
    long = "x" * (MAX_MESSAGE_BYTES - 3 - 17) + " " + run_on + " end"
    event, _, clean = builder.encode_checked(capture(message=long))
    assert event["message"].endswith(" 4111111111111111...") and clean is False
    event, _, clean = builder.encode_checked(capture(message=f"short {run_on}"))
    assert event["message"].endswith(run_on) and clean is True
