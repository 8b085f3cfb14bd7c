"""Heartbeat check-ins against a real broker and a real PostgreSQL: the three ways in (the
topic, `mendline checkin`, `mendline.heartbeat`) and the check-ins consumer that stores them."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import mendline
from mendline.devstack import KafkaBroker, free_port
from mendline.ingest import make_shipper, read_dead_letters
from mendline.sinks.postgres import CheckinStore
from tests.cli_helpers import cli, cli_env, json_object
from tests.db_helpers import query

from .kafka_helpers import produce, unique_topic
from .stage_helpers import checkin_settings, running_checkins, wait_until

pytestmark = pytest.mark.integration


async def rows(url: str, check: str) -> list[asyncpg.Record]:
    try:
        return await query(
            url,
            "SELECT * FROM mendline.checkins WHERE check_name = $1 ORDER BY timestamp, received_at",
            check,
        )
    except (asyncpg.UndefinedTableError, OSError):  # not migrated yet
        return []


async def stored(url: str, check: str, count: int) -> list[asyncpg.Record]:
    """The check's rows once there are ``count`` of them."""

    async def enough() -> bool:
        return len(await rows(url, check)) >= count

    await wait_until(enough, 60, f"{count} check-ins of {check}")
    return await rows(url, check)


def wire(check: str = "nightly-export", **fields: Any) -> dict[str, Any]:
    """A valid CheckIn v1 as another language would send it."""
    doc: dict[str, Any] = {
        "schema_version": 1,
        "checkin_id": str(uuid.uuid4()),
        "check": check,
        "status": "ok",
        "timestamp": datetime.now(UTC).isoformat(),
    }
    doc.update(fields)
    return doc


def encoded(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


# -- mendline checkin ----------------------------------------------------------------------


async def test_a_cli_checkin_is_stored_by_the_consumer(
    kafka_bootstrap: str, fresh_db_url: str
) -> None:
    settings = checkin_settings(kafka_bootstrap, fresh_db_url)
    env = {**cli_env(settings), "MENDLINE_CHECKINS_TOPIC": settings.checkins_topic}
    sent = await cli(
        "checkin",
        "nightly-export",
        "--status",
        "fail",
        "--run-id",
        "run-42",
        "--message",
        "export failed: password=hunter2pw",
        "--duration",
        "12.5",
        "--environment",
        "staging",
        env=env,
    )
    # A cron line mails what a command prints: a check-in that was written prints nothing.
    assert (sent.returncode, sent.stdout, sent.stderr) == (0, "", "")
    said = json_object(
        await cli("checkin", "nightly-export", "--status", "start", "--json", env=env)
    )
    assert (said["topic"], said["status"]) == (settings.checkins_topic, "start")
    async with running_checkins(settings):
        row, started = await stored(fresh_db_url, "nightly-export", 2)  # in the order sent
    assert str(started["checkin_id"]) == said["checkin_id"]
    assert (started["kafka_partition"], started["kafka_offset"]) == (
        said["partition"],
        said["offset"],
    )
    assert row["status"] == "fail"
    assert row["run_id"] == "run-42"
    assert row["environment"] == "staging"
    assert row["duration"] == 12.5
    assert row["host"]
    assert "hunter2pw" not in row["message"] and row["message"].startswith("export failed")
    assert abs(row["timestamp"] - datetime.now(UTC)) < timedelta(minutes=5)
    assert row["clamped"] is False


# -- mendline.heartbeat ----------------------------------------------------------------------


async def test_the_heartbeat_helper_stores_start_and_ok_of_one_run_with_its_duration(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path
) -> None:
    settings = checkin_settings(kafka_bootstrap, fresh_db_url, spool_dir=tmp_path / "spool")
    shipper = make_shipper(settings, service="jobs", environment="staging")
    try:
        with mendline.heartbeat("nightly-export", shipper=shipper):
            pass

        @mendline.heartbeat("sync-job", shipper=shipper)
        def sync_job(n: int) -> int:
            return n + 1

        @mendline.heartbeat("async-job", shipper=shipper)
        async def async_job(n: int) -> int:
            await asyncio.sleep(0)
            return n * 2

        assert sync_job(1) == 2
        assert await async_job(3) == 6
        assert await asyncio.to_thread(shipper.flush, 30)
    finally:
        shipper.shutdown(5)
    async with running_checkins(settings):
        for check in ("nightly-export", "sync-job", "async-job"):
            start, ok = await stored(fresh_db_url, check, 2)
            assert (start["status"], ok["status"]) == ("start", "ok")
            assert start["run_id"] and start["run_id"] == ok["run_id"]
            assert start["duration"] is None and ok["duration"] >= 0
            assert start["environment"] == ok["environment"] == "staging"
            assert start["checkin_id"] != ok["checkin_id"]


async def test_a_failing_job_sends_fail_with_its_scrubbed_exception_and_raises_it(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path
) -> None:
    settings = checkin_settings(kafka_bootstrap, fresh_db_url, spool_dir=tmp_path / "spool")
    shipper = make_shipper(settings, service="jobs")
    error = ValueError("login refused: password=hunter2pw " + "x" * 5000)
    try:
        with pytest.raises(ValueError) as raised, mendline.heartbeat("export", shipper=shipper):
            raise error
        assert raised.value is error

        @mendline.heartbeat("async-export", shipper=shipper)
        async def job() -> None:
            raise KeyError("token=hunter2pw")

        with pytest.raises(KeyError):
            await job()
        assert await asyncio.to_thread(shipper.flush, 30)
    finally:
        shipper.shutdown(5)
    async with running_checkins(settings):
        start, fail = await stored(fresh_db_url, "export", 2)
        _, async_fail = await stored(fresh_db_url, "async-export", 2)
    assert fail["status"] == "fail" and fail["run_id"] == start["run_id"]
    assert fail["duration"] >= 0
    assert fail["message"].startswith("ValueError: login refused")
    assert len(fail["message"].encode()) <= 1000  # shortened
    assert async_fail["status"] == "fail" and async_fail["message"].startswith("KeyError")
    everything = await query(fresh_db_url, "SELECT message FROM mendline.checkins")
    assert not any("hunter2pw" in (r["message"] or "") for r in everything)


async def test_tasks_in_one_heartbeat_at_once_each_pair_their_own_start_and_finish(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path
) -> None:
    settings = checkin_settings(kafka_bootstrap, fresh_db_url, spool_dir=tmp_path / "spool")
    shipper = make_shipper(settings, service="jobs")
    beat = mendline.heartbeat("shared", shipper=shipper)
    both_in, first_out = asyncio.Event(), asyncio.Event()

    async def failing() -> None:  # enters first, leaves first
        async with beat:
            await both_in.wait()
            first_out.set()
            raise ValueError("first")

    async def succeeding() -> None:
        await asyncio.sleep(0.01)  # its start is dated after the other's
        async with beat:
            both_in.set()
            await first_out.wait()
            await asyncio.sleep(0)

    try:
        results = await asyncio.gather(failing(), succeeding(), return_exceptions=True)
        assert isinstance(results[0], ValueError) and results[1] is None
        assert await asyncio.to_thread(shipper.flush, 30)
    finally:
        shipper.shutdown(5)
    async with running_checkins(settings):
        checkins = await stored(fresh_db_url, "shared", 4)
    runs: dict[str, list[str]] = {}  # by run_id, in the order of their starts
    for row in checkins:
        runs.setdefault(row["run_id"], []).append(row["status"])
    assert list(runs.values()) == [["start", "fail"], ["start", "ok"]]


async def test_the_helper_never_raises_while_kafka_is_down_and_sends_once_it_is_up(
    kafka_broker_factory: Callable[..., KafkaBroker], fresh_db_url: str, tmp_path: Path
) -> None:
    broker = kafka_broker_factory(free_port(), start=False)  # a closed port, for now
    settings = checkin_settings(broker.bootstrap, fresh_db_url, spool_dir=tmp_path / "spool")
    shipper = make_shipper(settings, service="jobs")
    beat = mendline.heartbeat("offline-job", shipper=shipper)
    try:
        with beat:
            pass
        with pytest.raises(RuntimeError, match="the job's own"), beat:
            raise RuntimeError("the job's own")
        assert beat.failures == 0 and shipper.stats.received == 4
        await asyncio.sleep(1.0)
        assert shipper.stats.sent == 0  # nothing can have been sent: there is no broker yet
        broker.start()
        assert await asyncio.to_thread(shipper.flush, 60)
    finally:
        shipper.shutdown(5)
    async with running_checkins(settings):
        statuses = [r["status"] for r in await stored(fresh_db_url, "offline-job", 4)]
    assert sorted(statuses) == ["fail", "ok", "start", "start"]


# -- the consumer ----------------------------------------------------------------------------


async def test_invalid_checkins_go_to_the_dlq_with_reasons_and_valid_ones_are_stored(
    kafka_bootstrap: str, fresh_db_url: str
) -> None:
    settings = checkin_settings(kafka_bootstrap, fresh_db_url)
    valid = wire("kept", status="fail", message="upload refused: token=hunter2pw")
    duplicate_key = b'{"schema_version": 1, "schema_version": 1, ' + encoded(wire())[1:]
    bad = [
        duplicate_key,
        encoded(wire(schema_version="1")),
        encoded(wire(schema_version=True)),
        encoded(wire(schema_version=2)),
        encoded(wire(status="done")),
        encoded(wire(check="no spaces")),
        encoded(wire(unknown="field")),
        b"not json",
    ]
    nul = wire("nul", host="cron\u0000-1")
    await produce(kafka_bootstrap, settings.checkins_topic, [*bad, encoded(valid), encoded(nul)])
    async with running_checkins(settings) as consumer:
        (row,) = await stored(fresh_db_url, "kept", 1)
        (with_nul,) = await stored(fresh_db_url, "nul", 1)
        await wait_until(
            lambda: sum(consumer.stats.dead_lettered.values()) == len(bad), 30, "the DLQ"
        )
    assert str(row["checkin_id"]) == valid["checkin_id"]
    assert row["message"].startswith("upload refused") and "hunter2pw" not in row["message"]
    letters = await read_dead_letters(
        settings.model_copy(update={"dlq_topic": settings.checkins_dlq_topic})
    )
    assert [d.value for d in letters] == bad
    assert [d.reason for d in letters] == [
        "invalid",
        "invalid",
        "invalid",
        "unknown_schema_version",
        "invalid",
        "invalid",
        "invalid",
        "not_json",
    ]
    assert "duplicate key" in letters[0].message and "status" in letters[4].message
    assert all(d.source.startswith(f"{settings.checkins_topic}[") for d in letters)
    assert with_nul["host"] == "cron\ufffd-1"  # PostgreSQL text cannot hold U+0000
    count = await query(fresh_db_url, "SELECT count(*) AS n FROM mendline.checkins")
    assert [r["n"] for r in count] == [2]


async def test_a_redelivered_checkin_is_stored_once(
    kafka_bootstrap: str, fresh_db_url: str
) -> None:
    settings = checkin_settings(kafka_bootstrap, fresh_db_url)
    one = encoded(wire("once"))
    await produce(kafka_bootstrap, settings.checkins_topic, [one, one, encoded(wire("after"))])
    async with running_checkins(settings) as consumer:
        await stored(fresh_db_url, "after", 1)
        assert consumer.stats.stored == 2 and consumer.stats.duplicates == 1
    # another group reads it all again: nothing changes
    again = settings.model_copy(update={"checkins_group": unique_topic("checkins-group")})
    async with running_checkins(again) as replay:
        await wait_until(lambda: replay.stats.received == 3, 60, "the replay")
        await wait_until(lambda: replay.stats.batches >= 1, 30, "the replay's commit")
    assert replay.stats.stored == 0 and replay.stats.duplicates == 3
    assert len(await rows(fresh_db_url, "once")) == 1


async def test_the_stream_clock_follows_timestamps_and_ignores_one_far_ahead(
    kafka_bootstrap: str, fresh_db_url: str
) -> None:
    settings = checkin_settings(kafka_bootstrap, fresh_db_url)
    now = datetime.now(UTC).replace(microsecond=0)
    store = CheckinStore(await asyncpg.create_pool(fresh_db_url))
    try:
        async with running_checkins(settings):
            assert await store.clock() is None
            first = wire("clocked", timestamp=(now - timedelta(minutes=10)).isoformat())
            await produce(kafka_bootstrap, settings.checkins_topic, [encoded(first)])
            await stored(fresh_db_url, "clocked", 1)
            assert await store.clock() == now - timedelta(minutes=10)

            later = wire("clocked", timestamp=(now - timedelta(minutes=2)).isoformat())
            older = wire("clocked", timestamp=(now - timedelta(hours=1)).isoformat())
            staging = wire("clocked", environment="staging", timestamp=now.isoformat())
            await produce(
                kafka_bootstrap, settings.checkins_topic, [encoded(d) for d in (later, older)]
            )
            await produce(kafka_bootstrap, settings.checkins_topic, [encoded(staging)])
            await stored(fresh_db_url, "clocked", 4)
            assert await store.clock("production") == now - timedelta(minutes=2)  # never back
            assert await store.clock("staging") == now
            assert await store.clock() == now

            ahead = now + timedelta(days=1)
            skewed = wire("skewed", status="start", timestamp=ahead.isoformat())
            await produce(kafka_bootstrap, settings.checkins_topic, [encoded(skewed)])
            (row,) = await stored(fresh_db_url, "skewed", 1)
        clock = await store.clock()
        assert clock is not None and now <= clock < now + timedelta(minutes=5)
        assert row["clamped"] is True and row["sent_timestamp"] == ahead
        assert row["timestamp"] < now + timedelta(minutes=5)

        runs = await store.checkins_for("clocked", now - timedelta(minutes=30))
        assert [str(c.checkin_id) for c in runs] == [
            first["checkin_id"],
            later["checkin_id"],
            staging["checkin_id"],
        ]
        only_staging = await store.checkins_for("clocked", now - timedelta(days=1), "staging")
        assert [c.environment for c in only_staging] == ["staging"]
    finally:
        await store.close()


async def test_a_checkin_dated_minutes_ahead_keeps_its_timestamp_but_not_the_clock(
    kafka_bootstrap: str, fresh_db_url: str
) -> None:
    settings = checkin_settings(kafka_bootstrap, fresh_db_url)
    ahead = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=4)  # a fast host
    store = CheckinStore(await asyncpg.create_pool(fresh_db_url))
    try:
        async with running_checkins(settings):
            fast = wire("fast-host", timestamp=ahead.isoformat())
            await produce(kafka_bootstrap, settings.checkins_topic, [encoded(fast)])
            (row,) = await stored(fresh_db_url, "fast-host", 1)
        after = datetime.now(UTC)
        clock = await store.clock()
        production = await store.clock("production")
        stamped = await query(fresh_db_url, "SELECT updated_at FROM mendline.checkin_clock")
    finally:
        await store.close()
    assert (row["timestamp"], row["clamped"]) == (ahead, False)  # kept for pairing runs
    # The clock went no further than when it was read, for every environment and for all.
    assert clock is not None and clock <= after < ahead
    assert production == clock
    # ... by the database's clock (the slots' and the schedule's), not the consumer host's:
    # the time of the transaction that moved it.
    assert {r["updated_at"] for r in stamped} == {clock}
