"""The monitor stage through faults, against real parts: a monitor killed with kill -9 in the
middle of a check, a database outage while checks run (and while the checks file changes),
a broker outage, a maintenance window, a check whose server never answers next to a healthy
one, and a bad checks file given to the command."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from mendline.devstack import EmbeddedPostgres, KafkaBroker
from mendline.schemas.settings import Settings
from tests.channel_servers import FakePagerDuty
from tests.cli_helpers import run
from tests.db_helpers import query
from tests.loopback import HOST
from tests.probe_servers import http_target

from .stage_helpers import (
    PAGE_ALL_HEALTH,
    monitor_settings,
    monitors,
    paging,
    status,
    wait_until,
)

pytestmark = pytest.mark.integration


def probe(name: str, url: str, *, interval: str = "1s", timeout: str = "2s", more: str = "") -> str:
    """A [[checks]] table of an HTTP check of ``url``, down after two failures in a row."""
    return (
        f'[[checks]]\nname = "{name}"\nkind = "http"\nurl = "{url}"\ninterval = "{interval}"\n'
        f'timeout = "{timeout}"\nfailure_threshold = 2\nsuccess_threshold = 1\n'
        f'severity = "critical"\n{more}'
    )


async def results(url: str, name: str) -> list[asyncpg.Record]:
    """The check's rows of the check_results view, oldest slot first."""
    return await query(
        url,
        "SELECT scheduled_at, success, maintenance, error_kind, owner FROM mendline.check_results"
        " WHERE check_name = $1 ORDER BY scheduled_at",
        name,
    )


async def has_results(url: str, name: str, at_least: int, **match: object) -> bool:
    """Whether the check has ``at_least`` results whose columns are as in ``match``."""
    rows = await results(url, name)
    return sum(all(row[k] == v for k, v in match.items()) for row in rows) >= at_least


# -- kill -9 in the middle of a check -------------------------------------------------------


def spawn_monitor(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """``mendline monitor`` as a process of its own on the settings' database, broker,
    checks file and check-ins topics, with a short lease."""
    assert settings.checks_file is not None
    env = {
        **os.environ,
        "MENDLINE_DATABASE_URL": settings.database_url.get_secret_value(),
        "MENDLINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "MENDLINE_CHECKS_FILE": str(settings.checks_file),
        "MENDLINE_SELF_CHECKS": "false",
        "MENDLINE_MONITOR_LEASE": str(settings.monitor_lease),
        "MENDLINE_MONITOR_POLL_INTERVAL": "0.1",
        "MENDLINE_CHECKINS_TOPIC": settings.checkins_topic,
        "MENDLINE_CHECKINS_DLQ_TOPIC": settings.checkins_dlq_topic,
        "MENDLINE_CHECKINS_GROUP": settings.checkins_group,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "mendline", "monitor"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


async def holder(url: str, name: str) -> dict[str, object] | None:
    """Who holds the check's slot: its owner, slot and claims, when a lease is held."""
    rows = await query(
        url,
        "SELECT owner, slot_at, attempts FROM mendline.check_schedule"
        " WHERE check_name = $1 AND lease_until IS NOT NULL",
        name,
    )
    return dict(rows[0]) if rows else None


async def test_a_slot_held_by_a_killed_monitor_is_run_once_by_another_after_its_lease(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path
) -> None:
    async with http_target() as target:
        target.mode, target.delay = "slow", 120.0  # holds the request past the test's end
        checks = tmp_path / "checks.toml"
        checks.write_text(probe("orders-api", target.url, interval="2s", timeout="60s"))
        settings = monitor_settings(kafka_bootstrap, fresh_db_url, checks, monitor_lease=3.0)
        process = spawn_monitor(settings, tmp_path / "monitor.log")
        try:
            killed_owner = f"{socket.gethostname()}:{process.pid}:"
            await wait_until(lambda: len(target.requests) == 1, 30, "the first monitor's request")
            held = await holder(fresh_db_url, "orders-api")
            assert held is not None and str(held["owner"]).startswith(killed_owner)
            assert held["attempts"] == 1
            slot = held["slot_at"]
            async with monitors(settings) as (second,):
                # Longer than the lease (the second looks every 0.1 s): the living first
                # monitor keeps renewing it.
                await asyncio.sleep(settings.monitor_lease + 1)
                assert second.stats.runs == 0
                assert len(target.requests) == 1
                assert await holder(fresh_db_url, "orders-api") == held
                target.mode = "healthy"
                process.send_signal(signal.SIGKILL)
                assert await asyncio.to_thread(process.wait, 30) == -signal.SIGKILL
                await wait_until(
                    lambda: has_results(fresh_db_url, "orders-api", 1, scheduled_at=slot),
                    30,
                    "the killed monitor's slot run by the second",
                )
            log = (tmp_path / "monitor.log").read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(30)
        requests = len(target.requests)
    stored = await results(fresh_db_url, "orders-api")
    assert stored[0]["scheduled_at"] == slot
    assert (stored[0]["owner"], stored[0]["success"]) == ("monitor-0", True)
    assert {row["owner"] for row in stored} == {"monitor-0"}  # the killed one stored nothing
    # Each request but the killed monitor's is one stored result: no slot ran twice after.
    assert requests == 1 + len(stored) == 1 + second.stats.runs
    assert second.stats.already_recorded == 0
    assert "Traceback" not in log
    assert await status(fresh_db_url, "orders-api") == "up"


# -- a database outage ----------------------------------------------------------------------


async def test_results_wait_through_a_database_outage_and_no_false_alert_is_made(
    kafka_bootstrap: str,
    postgres_factory: Callable[..., EmbeddedPostgres],
    pagerduty: FakePagerDuty,
    tmp_path: Path,
) -> None:
    server = postgres_factory()
    async with http_target() as target:
        checks = tmp_path / "checks.toml"
        checks.write_text(probe("ledger-api", target.url, timeout="10s"))
        routes = tmp_path / "routes.toml"
        routes.write_text(PAGE_ALL_HEALTH.format(pagerduty=pagerduty.events_url))
        settings = monitor_settings(kafka_bootstrap, server.url, checks, routes)
        async with monitors(settings) as (worker,), paging(settings, pagerduty):
            await wait_until(lambda: has_results(server.url, "ledger-api", 3), 20, "3 results")
            assert await status(server.url, "ledger-api") == "up"
            # The next request is held for a while: its check is running when the database
            # goes, and its result comes back while it is out.
            target.mode, target.delay = "slow", 3.5
            seen = len(target.requests)
            await wait_until(lambda: len(target.requests) > seen, 10, "a request held")
            await asyncio.to_thread(server.stop)
            target.mode = "healthy"
            await wait_until(lambda: worker.stats.unrecorded >= 1, 20, "a result kept in memory")
            await asyncio.sleep(2)  # down for a while more: the loop backs off, it does not end
            assert worker.stats.unrecorded >= 1
            assert pagerduty.requests == []
            await asyncio.to_thread(server.start)
            back = datetime.now(UTC)
            await wait_until(lambda: worker.stats.unrecorded == 0, 40, "the kept results written")
            await wait_until(
                lambda: resumed(server.url, "ledger-api", back, 3), 40, "results after the outage"
            )
            await asyncio.sleep(1.5)  # an alert made by mistake would be sent by now
        requests = len(target.requests)
    stored = await results(server.url, "ledger-api")
    # Every check run, the one held through the outage included, was stored, once.
    assert requests == len(stored) == worker.stats.runs == worker.stats.recorded
    assert all(row["success"] for row in stored)
    assert await status(server.url, "ledger-api") == "up"
    triggers = await query(server.url, "SELECT kind FROM mendline.triggers")
    assert triggers == []  # no health_down, nothing at all
    assert pagerduty.requests == []
    assert worker.stats.transitions == {}


async def test_a_checks_file_changed_during_a_database_outage_is_synced_once_it_is_back(
    kafka_bootstrap: str, postgres_factory: Callable[..., EmbeddedPostgres], tmp_path: Path
) -> None:
    server = postgres_factory()
    async with http_target() as target:
        checks = tmp_path / "checks.toml"
        checks.write_text(probe("first-api", target.url))
        settings = monitor_settings(kafka_bootstrap, server.url, checks)
        async with monitors(settings) as (worker,):
            await wait_until(lambda: has_results(server.url, "first-api", 2), 20, "2 results")
            await asyncio.to_thread(server.stop)
            # Edited while the database is out: "first-api" goes, "second-api" comes.
            checks.write_text(probe("second-api", f"{target.url}?second"))
            await wait_until(lambda: worker.stats.reloads == 1, 30, "the file read again")
            await asyncio.to_thread(server.start)
            back = datetime.now(UTC)
            await wait_until(
                lambda: has_results(server.url, "second-api", 2), 40, "the new check's results"
            )
            await asyncio.sleep(1.5)  # a retired check would have run again by now
    registry = await query(
        server.url, "SELECT name, retired_at IS NOT NULL AS retired FROM mendline.checks"
    )
    assert {row["name"]: row["retired"] for row in registry} == {
        "first-api": True,
        "second-api": False,
    }
    assert not await resumed(server.url, "first-api", back, 1)  # not run after the outage
    second = await results(server.url, "second-api")
    assert all(row["success"] for row in second)
    assert worker.stats.reloads == 1


async def resumed(url: str, name: str, since: datetime, at_least: int) -> bool:
    """Whether the check has ``at_least`` results of slots after ``since``."""
    rows = await results(url, name)
    return sum(bool(row["scheduled_at"] > since) for row in rows) >= at_least


async def test_a_broker_outage_does_not_hold_up_the_checks(
    kafka_broker_factory: Callable[..., KafkaBroker], fresh_db_url: str, tmp_path: Path
) -> None:
    broker = kafka_broker_factory()
    async with http_target() as target:
        checks = tmp_path / "checks.toml"
        checks.write_text(probe("search-api", target.url))
        settings = monitor_settings(broker.bootstrap, fresh_db_url, checks)
        async with monitors(settings) as (worker,):
            await wait_until(lambda: has_results(fresh_db_url, "search-api", 3), 20, "3 results")
            # The clock ticks go to the check-ins topic; with the broker out, each waits out
            # its timeout, beside the checks. (Killed if not gone within a second: stopping,
            # Tansu waits five for its clients to hang up.)
            await asyncio.to_thread(broker.stop, 1.0)
            gone = datetime.now(UTC)
            await wait_until(
                lambda: resumed(fresh_db_url, "search-api", gone, 5), 20, "results meanwhile"
            )
        requests = len(target.requests)
    stored = await results(fresh_db_url, "search-api")
    assert requests == len(stored) == worker.stats.runs
    assert all(row["success"] for row in stored)
    assert await status(fresh_db_url, "search-api") == "up"


# -- a maintenance window -------------------------------------------------------------------


async def test_a_check_down_in_a_maintenance_window_pages_once_after_it(
    kafka_bootstrap: str, fresh_db_url: str, pagerduty: FakePagerDuty, tmp_path: Path
) -> None:
    start = datetime.now(UTC)
    end = start + timedelta(seconds=6)
    window = f'[[checks.maintenance]]\nstart = "{start.isoformat()}"\nduration = "6s"\n'
    async with http_target() as target:
        target.mode = "down"
        checks = tmp_path / "checks.toml"
        checks.write_text(probe("billing-api", target.url, more=window))
        routes = tmp_path / "routes.toml"
        routes.write_text(PAGE_ALL_HEALTH.format(pagerduty=pagerduty.events_url))
        settings = monitor_settings(kafka_bootstrap, fresh_db_url, checks, routes)
        async with monitors(settings), paging(settings, pagerduty):
            await wait_until(
                lambda: has_results(fresh_db_url, "billing-api", 3, maintenance=True),
                20,
                "failures in the window",
            )
            # More failures than the threshold, yet the state is frozen while it lasts.
            after_window = await has_results(fresh_db_url, "billing-api", 1, maintenance=False)
            assert after_window or await status(fresh_db_url, "billing-api") == "unknown"
            await wait_until(lambda: len(pagerduty.requests) >= 1, 30, "the page after the window")
            await wait_until(
                lambda: has_results(fresh_db_url, "billing-api", 5, maintenance=False),
                30,
                "more failures after the window",
            )
            await asyncio.sleep(1)  # a second page would be sent by now
    stored = await results(fresh_db_url, "billing-api")
    assert not any(row["success"] for row in stored)
    muted = [row["scheduled_at"] for row in stored if row["maintenance"]]
    counted = [row["scheduled_at"] for row in stored if not row["maintenance"]]
    assert len(muted) >= 3 and len(counted) >= 5
    assert max(muted) < end <= min(counted)
    assert [b["event_action"] for b in pagerduty.bodies()] == ["trigger"]
    told = await query(fresh_db_url, "SELECT kind, dedup_key FROM mendline.triggers")
    assert [row["kind"] for row in told] == ["health_down"]
    # Told of the second failure after the window (the key ends with its slot), not before.
    assert told[0]["dedup_key"].endswith(counted[1].isoformat())
    down = await query(
        fresh_db_url, "SELECT since, status FROM mendline.check_status WHERE name = 'billing-api'"
    )
    assert (down[0]["status"], down[0]["since"]) == ("down", counted[1])
    uptime = await query(
        fresh_db_url,
        "SELECT results, failures, maintenance_results, counted_results, availability"
        " FROM mendline.uptime_daily WHERE check_name = 'billing-api'",
    )
    assert [dict(row) for row in uptime] == [
        {
            "results": len(stored),
            "failures": len(counted),
            "maintenance_results": len(muted),
            "counted_results": len(counted),
            "availability": 0.0,
        }
    ]


# -- a check that never ends ----------------------------------------------------------------


@dataclass
class SilentServer:
    """A TCP server on loopback that takes connections and never answers."""

    port: int = 0
    connections: int = 0

    @property
    def url(self) -> str:
        """An HTTP URL on it."""
        return f"http://{HOST}:{self.port}/health"


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[SilentServer]:
    """Serve a SilentServer until the block ends."""
    silent = SilentServer()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.connections += 1
        with contextlib.suppress(ConnectionError):
            await reader.read()  # until the client gives up and hangs up
        writer.close()

    server = await asyncio.start_server(hold, HOST, 0)
    silent.port = server.sockets[0].getsockname()[1]
    try:
        yield silent
    finally:
        server.close()
        await server.wait_closed()


async def test_a_check_whose_server_never_answers_does_not_hold_up_the_others(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path
) -> None:
    async with http_target() as target, silent_server() as silent:
        checks = tmp_path / "checks.toml"
        checks.write_text(
            probe("stuck-api", silent.url, timeout="1s")
            + "\n"
            + probe("fine-api", target.url, timeout="1s")
        )
        settings = monitor_settings(kafka_bootstrap, fresh_db_url, checks)
        async with monitors(settings) as (worker,):
            await wait_until(
                lambda: has_results(fresh_db_url, "stuck-api", 5), 30, "five timed-out slots"
            )
        requests = len(target.requests)
    stuck = await results(fresh_db_url, "stuck-api")
    fine = await results(fresh_db_url, "fine-api")
    assert {(row["success"], row["error_kind"]) for row in stuck} == {(False, "timeout")}
    assert silent.connections == len(stuck)  # one connection a slot, each given up on
    assert {(row["success"], row["error_kind"]) for row in fine} == {(True, None)}
    assert requests == len(fine)
    # A run of the stuck check takes its whole timeout, a second: run one after another,
    # the fine check could have had at most one result more than the stuck one.
    assert len(fine) >= len(stuck) + 3
    assert worker.stats.runs == len(stuck) + len(fine)
    assert await status(fresh_db_url, "stuck-api") == "down"
    assert await status(fresh_db_url, "fine-api") == "up"


# -- a bad checks file ------------------------------------------------------------------------


BAD_CHECKS = """[[checks]]
name = "payments-api"
kind = "http"
url = "https://payments.internal/health"
interval = "often"

[[checks]]
name = "nightly-export"
"""


@pytest.mark.parametrize("command", [("monitor",), ("run", "--only", "monitor")])
def test_a_bad_checks_file_is_every_problem_with_its_line_and_a_hint(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    checks = tmp_path / "checks.toml"
    checks.write_text(BAD_CHECKS)
    env = {
        "MENDLINE_CHECKS_FILE": str(checks),
        # Never reached: the file is refused before anything connects.
        "MENDLINE_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/nothing",
        "MENDLINE_KAFKA_BOOTSTRAP": "127.0.0.1:9",
    }
    said = run(*command, env=env, timeout=60)
    assert said.returncode == 1, said.stderr
    assert said.stdout == ""
    assert "Traceback" not in said.stderr
    assert said.stderr.splitlines() == [
        f'mendline: {checks}:5: checks[0].interval: "often" is not a duration'
        " (use 30s, 5m, 4h, 1h30m or seconds)",
        f"mendline: {checks}:7: checks[1].kind: missing: say kind = "
        '"http", "tcp", "dns", "tls", "postgres", "kafka" or "heartbeat"',
        "hint: `mendline checks check` lists every problem of the checks file with its line",
    ]
