"""The postgres probe against the session's real PostgreSQL server."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

from mendline.analyzers.health.conditions import ROWS_LIMIT, evaluate
from mendline.devstack import free_port
from mendline.ingest.probes import observe
from mendline.schemas.checks import PostgresCheck
from mendline.schemas.settings import Settings

pytestmark = pytest.mark.integration

SETTINGS = Settings()


def pg_check(query: str = "SELECT 1", **fields: object) -> PostgresCheck:
    return PostgresCheck(kind="postgres", name="db", dsn_env="PROBE_DSN", query=query, **fields)


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{parts.username}:{password}@{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def test_a_query_is_run_and_its_first_value_rows_and_durations_observed(
    database_url: str,
) -> None:
    check = pg_check("SELECT n * 10 FROM generate_series(1, 3) AS n ORDER BY n")
    seen = await observe(check, SETTINGS, {"PROBE_DSN": database_url})
    assert seen.error is None
    assert seen.values["CONNECTED"] is True
    assert (seen.values["ROWS"], seen.values["RESULT"]) == (3, "10")
    duration, total = seen.values["QUERY_DURATION"], seen.values["RESPONSE_TIME"]
    assert isinstance(duration, float) and isinstance(total, float) and total >= duration >= 0
    assert seen.timings["total"] >= seen.timings["connect"] >= 0


async def test_a_query_without_rows_or_with_a_null_has_no_result(database_url: str) -> None:
    environ = {"PROBE_DSN": database_url}
    empty = await observe(pg_check("SELECT 1 WHERE false"), SETTINGS, environ)
    null = await observe(pg_check("SELECT NULL"), SETTINGS, environ)
    assert (empty.values["ROWS"], empty.values["RESULT"]) == (0, None)
    assert (null.values["ROWS"], null.values["RESULT"]) == (1, None)


async def test_a_query_of_a_million_rows_fetches_one_and_counts_up_to_the_limit(
    database_url: str,
) -> None:
    """Only the first row comes over: ROWS stops at the limit (plus one: "more"), RESULT is
    still the first value."""
    environ = {"PROBE_DSN": database_url}
    many = "SELECT g, repeat('x', 100) FROM generate_series(7, 1000006) AS g ORDER BY g"
    big = await observe(pg_check(many, timeout=60), SETTINGS, environ)
    exact = f"SELECT g FROM generate_series(1, {ROWS_LIMIT}) AS g"
    at_limit = await observe(pg_check(exact, timeout=30), SETTINGS, environ)
    assert big.error is None
    assert (big.values["ROWS"], big.values["RESULT"]) == (ROWS_LIMIT + 1, "7")
    assert (at_limit.values["ROWS"], at_limit.values["RESULT"]) == (ROWS_LIMIT, "1")
    more, at_most, exactly = (f"[ROWS] {op} {ROWS_LIMIT}" for op in (">", "<=", "=="))
    assert [r.success for r in evaluate([more, at_most, exactly], big)] == [True, False, False]
    assert [r.success for r in evaluate([more, at_most, exactly], at_limit)] == [False, True, True]


async def test_a_statement_that_returns_no_rows_runs_outside_a_transaction(
    database_url: str,
) -> None:
    check = pg_check("VACUUM pg_catalog.pg_am", timeout=30)  # refused in a transaction
    seen = await observe(check, SETTINGS, {"PROBE_DSN": database_url})
    assert seen.error is None
    assert (seen.values["ROWS"], seen.values["RESULT"]) == (0, None)


async def test_a_query_of_no_columns_counts_its_rows_and_commands_still_run(
    database_url: str,
) -> None:
    environ = {"PROBE_DSN": database_url}
    no_columns = await observe(pg_check("SELECT FROM generate_series(1, 5)"), SETTINGS, environ)
    assert no_columns.error is None
    assert (no_columns.values["ROWS"], no_columns.values["RESULT"]) == (5, None)
    none = await observe(
        pg_check("SELECT FROM generate_series(1, 5) WHERE false"), SETTINGS, environ
    )
    assert (none.values["ROWS"], none.values["RESULT"]) == (0, None)
    table = f"probe_rows_{uuid.uuid4().hex[:10]}"
    commands = [
        f"CREATE TABLE {table} AS SELECT 1 AS n",
        "SET statement_timeout = '5s'",
        f"UPDATE {table} SET n = n + 1",
    ]
    for query in commands:
        seen = await observe(pg_check(query), SETTINGS, environ)
        assert seen.error is None, query
        assert (seen.values["ROWS"], seen.values["RESULT"]) == (0, None)
    updated = await observe(pg_check(f"SELECT n FROM {table}"), SETTINGS, environ)
    assert (updated.values["ROWS"], updated.values["RESULT"]) == (1, "2")
    assert (await observe(pg_check(f"DROP TABLE {table}"), SETTINGS, environ)).error is None


async def test_a_failing_query_is_a_query_error_after_connecting(database_url: str) -> None:
    check = pg_check("SELECT * FROM no_such_table_for_probes")
    seen = await observe(check, SETTINGS, {"PROBE_DSN": database_url})
    assert seen.error_kind == "query"
    assert seen.error is not None and "no_such_table_for_probes" in seen.error
    assert seen.values["CONNECTED"] is True


async def test_a_query_longer_than_the_timeout_is_a_timeout(database_url: str) -> None:
    check = pg_check("SELECT pg_sleep(5)", timeout=0.5)
    seen = await observe(check, SETTINGS, {"PROBE_DSN": database_url})
    assert seen.error_kind == "timeout"
    assert seen.values["CONNECTED"] is True


async def test_a_wrong_password_is_an_auth_error_that_never_shows_the_password(
    database_url: str,
) -> None:
    password = "not-the-password-4711"
    seen = await observe(pg_check(), SETTINGS, {"PROBE_DSN": with_password(database_url, password)})
    assert seen.error_kind == "auth"
    assert seen.values["CONNECTED"] is False
    assert password not in seen.model_dump_json()
    real = urlsplit(database_url).password
    assert real is not None and real not in seen.model_dump_json()


async def test_a_refused_port_is_refused_and_the_url_is_not_shown(database_url: str) -> None:
    parts = urlsplit(database_url)
    url = urlunsplit(
        parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{free_port()}")
    )
    seen = await observe(pg_check(timeout=5), SETTINGS, {"PROBE_DSN": url})
    assert seen.error_kind == "refused"
    assert parts.password is not None and parts.password not in seen.model_dump_json()


async def test_an_unset_or_malformed_url_is_a_config_error_naming_the_variable() -> None:
    unset = await observe(pg_check(), SETTINGS, {})
    secret = "hunter2-secret"
    bad = await observe(pg_check(), SETTINGS, {"PROBE_DSN": f"mysql://u:{secret}@h:99999/x"})
    assert unset.error_kind == "config" and "PROBE_DSN" in (unset.error or "")
    assert bad.error_kind == "config" and "PROBE_DSN" in (bad.error or "")
    assert secret not in bad.model_dump_json()
