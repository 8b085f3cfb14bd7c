"""mendline's own checks, made from the settings, and their queries run on a real database."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from mendline.analyzers.health import (
    SELF_CHECK_PREFIX,
    SELF_DSN_ENV,
    default_conditions,
    self_checks,
)
from mendline.ingest.probes import run_check
from mendline.schemas.checks import Check, CheckResult, KafkaCheck, PostgresCheck
from mendline.schemas.settings import Settings
from mendline.sinks.postgres import migrate


def test_self_checks_follow_the_settings_and_carry_the_self_labels() -> None:
    settings = Settings(
        consumer_group="group-a",
        errors_topic="topic-a",
        dlq_topic="dlq-a",
        checkins_dlq_topic="checkins-dlq-a",
        self_check_max_lag=7,
        self_check_max_age=120,
    )
    checks = {check.name: check for check in self_checks(settings)}
    assert set(checks) == {
        "mendline.database",
        "mendline.consumer-lag",
        "mendline.dead-letters",
        "mendline.checkin-dead-letters",
        "mendline.analysis-backlog",
        "mendline.alert-backlog",
        "mendline.llm-breaker",
        "mendline.checkin-clock",
    }
    lag = checks["mendline.consumer-lag"]
    assert isinstance(lag, KafkaCheck)
    assert (lag.group, lag.topic) == ("group-a", "topic-a")
    assert "[LAG] <= 7" in default_conditions(lag)
    for name, topic in (
        ("mendline.dead-letters", "dlq-a"),
        ("mendline.checkin-dead-letters", "checkins-dlq-a"),
    ):
        dead = checks[name]
        assert isinstance(dead, KafkaCheck) and (dead.topic, dead.group) == (topic, None)
        assert dead.conditions == ["[RECENT] == 0"] and dead.recent_window == 600
        assert dead.severity == "warning"
    backlog = checks["mendline.analysis-backlog"]
    assert isinstance(backlog, PostgresCheck) and backlog.conditions == ["[RESULT] < 120"]
    for check in checks.values():
        assert check.name.startswith(SELF_CHECK_PREFIX)
        assert check.labels_service == "mendline" and check.tags == {"mendline": "self"}


@pytest.mark.parametrize(
    ("tick", "limit"),
    [
        (10.0, "120"),  # the default tick: five ticks are less than the two-minute floor
        (24.0, "120"),
        (60.0, "300"),  # five ticks
        (0.5, "120"),
    ],
)
def test_the_checkin_clock_may_stand_still_five_ticks_and_at_least_two_minutes(
    tick: float, limit: str
) -> None:
    check = _named(Settings(monitor_tick_interval=tick), "mendline.checkin-clock")
    assert isinstance(check, PostgresCheck) and check.dsn_env == SELF_DSN_ENV
    assert check.conditions == [f"[RESULT] < {limit}"]


def _named(settings: Settings, name: str) -> Check:
    (check,) = [c for c in self_checks(settings) if c.name == name]
    return check


# -- the queries, on mendline's real database ------------------------------------------------


async def _run(check: Check, url: str) -> CheckResult:
    """The check run as the monitor runs it, with the self checks' variable set to ``url``."""
    return await run_check(check, datetime.now(UTC), Settings(), {SELF_DSN_ENV: url})


def _result(run: CheckResult) -> int:
    """The number the run's ``[RESULT]`` condition was judged on."""
    (observed,) = [c.observed for c in run.conditions if c.condition.startswith("[RESULT]")]
    return int(observed)


async def _migrated(url: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(url)
    await migrate(conn)
    return conn


@pytest.mark.integration
async def test_the_checkin_clock_check_is_down_only_when_the_clock_stood_still_too_long(
    fresh_db_url: str,
) -> None:
    check = _named(Settings(monitor_tick_interval=10), "mendline.checkin-clock")
    conn = await _migrated(fresh_db_url)
    try:
        # No clock yet (no tick read since the database was made): not a stopped clock.
        never = await _run(check, fresh_db_url)
        assert never.success and _result(never) == 0

        async def clock_at(age: timedelta, environment: str = "*") -> None:
            await conn.execute(
                "INSERT INTO mendline.checkin_clock (environment, newest) VALUES ($1, $2)"
                " ON CONFLICT (environment) DO UPDATE SET newest = EXCLUDED.newest",
                environment,
                datetime.now(UTC) - age,
            )

        await clock_at(timedelta(seconds=15))  # ticked a moment ago
        assert (await _run(check, fresh_db_url)).success
        await clock_at(timedelta(minutes=10))  # no tick read for ten minutes
        stopped = await _run(check, fresh_db_url)
        assert not stopped.success
        assert 600 <= _result(stopped) < 700
        # One environment's fresh check-ins do not hide that the ticks stopped: the clock of
        # all environments is the one the ticks move.
        await clock_at(timedelta(seconds=1), environment="production")
        assert not (await _run(check, fresh_db_url)).success
        # A sender's clock ahead of ours (up to the five minutes not clamped) is not an age.
        await clock_at(-timedelta(minutes=4))
        ahead = await _run(check, fresh_db_url)
        assert ahead.success and _result(ahead) < 0
    finally:
        await conn.close()


@pytest.mark.integration
async def test_the_database_check_counts_client_sessions_against_max_connections(
    fresh_db_url: str,
) -> None:
    check = _named(Settings(), "mendline.database")
    conn = await _migrated(fresh_db_url)
    try:
        slots = int(await conn.fetchval("SHOW max_connections"))
        before = await _run(check, fresh_db_url)
        assert before.success
        # The probe's own session and this one, at least, are client sessions.
        used = _result(before)
        assert used >= 200 // slots
        # More sessions raise the share, by the same count of slots.
        extra = [await asyncpg.connect(fresh_db_url) for _ in range(max(1, slots // 10))]
        try:
            after = await _run(check, fresh_db_url)
        finally:
            for session in extra:
                await session.close()
        assert _result(after) >= used + (100 * len(extra)) // slots - 1
    finally:
        await conn.close()


@pytest.mark.integration
async def test_the_database_check_fails_when_new_sessions_are_refused(
    fresh_db_url: str,
) -> None:
    # While the monitor's pool holds its sessions, a refused new one can still be recorded:
    # a role that may not log in any more stands for changed credentials or a full server.
    check = _named(Settings(), "mendline.database")
    conn = await asyncpg.connect(fresh_db_url)
    try:
        role = f"selfcheck_{datetime.now(UTC).strftime('%H%M%S%f')}"
        await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw-for-a-test' CONNECTION LIMIT 0")
        try:
            parts = urlsplit(fresh_db_url)
            netloc = f"{role}:pw-for-a-test@{parts.hostname}:{parts.port}"
            refused_url = urlunsplit(parts._replace(netloc=netloc))
            result = await _run(check, refused_url)
        finally:
            await conn.execute(f"DROP ROLE {role}")
    finally:
        await conn.close()
    assert not result.success and result.error_kind == "other"
    assert result.error is not None and "pw-for-a-test" not in result.model_dump_json()


@pytest.mark.integration
async def test_the_dead_letters_check_fails_while_records_were_dead_lettered_lately(
    kafka_bootstrap: str,
) -> None:
    dlq = f"self-dlq-{uuid.uuid4().hex[:10]}"
    settings = Settings(kafka_bootstrap=kafka_bootstrap, dlq_topic=dlq)
    check = _named(settings, "mendline.dead-letters")

    async def run() -> CheckResult:
        return await run_check(check, datetime.now(UTC), settings, {})

    # Nothing ever dead-lettered: the topic does not even exist, and the check is up.
    never = await run()
    assert never.success and never.error is None
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        # Dead-lettered eleven minutes ago: out of the ten-minute window.
        eleven_minutes_ago = int((time.time() - 660) * 1000)
        await producer.send_and_wait(dlq, b"bad", timestamp_ms=eleven_minutes_ago)
        assert (await run()).success
        await producer.send_and_wait(dlq, b"bad")  # just now
    finally:
        await producer.stop()
    failed = await run()
    assert not failed.success and failed.error is None
    assert [(c.condition, c.observed) for c in failed.conditions] == [("[RECENT] == 0", "1")]
