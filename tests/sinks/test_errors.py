"""How PostgreSQL failures are read and translated into the error tree, over real driver errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from asyncpg import exceptions as pg

from mendline.devstack import EmbeddedPostgres
from mendline.schemas.errors import DatabaseError, DatabaseUnavailable, RejectedData
from mendline.sinks.postgres import is_bad_data, is_outage, translate, translated

# (the driver's error, is it bad data, is it an outage)
CASES = [
    (pg.UniqueViolationError("duplicate key"), True, False),
    (pg.StringDataRightTruncationError("value too long"), True, False),
    (pg.UntranslatableCharacterError("\\u0000 cannot be converted"), True, False),
    (pg.ProgramLimitExceededError("index row size exceeds maximum"), True, False),
    (pg.CannotConnectNowError("the database system is starting up"), False, True),
    (pg.ReadOnlySQLTransactionError("read-only transaction"), False, True),
    (pg.InsufficientPrivilegeError("permission denied"), False, True),
    (pg.UndefinedTableError("relation does not exist"), False, True),
    (pg.ConnectionDoesNotExistError("connection was closed"), False, True),
    (ConnectionRefusedError(111, "Connection refused"), False, True),
    (TimeoutError(), False, True),
    (
        pg.InternalClientError("cannot switch to state 15; another operation is in progress"),
        False,
        True,
    ),
    (ValueError("a bug of ours"), False, False),
    (KeyError("event_id"), False, False),
]


@pytest.mark.parametrize(("error", "bad_data", "outage"), CASES)
def test_a_driver_error_is_bad_data_an_outage_or_neither(
    error: Exception, bad_data: bool, outage: bool
) -> None:
    assert (is_bad_data(error), is_outage(error)) == (bad_data, outage)


@pytest.mark.parametrize(("error", "bad_data", "outage"), CASES)
def test_its_translation_reads_the_same_and_is_classified_by_the_tree(
    error: Exception, bad_data: bool, outage: bool
) -> None:
    translated_error = translate(error)
    if not (bad_data or outage):
        assert translated_error is None  # left as it is
        return
    assert isinstance(translated_error, DatabaseError)
    assert isinstance(translated_error, RejectedData) == bad_data
    assert isinstance(translated_error, DatabaseUnavailable) == outage
    assert translated_error.retriable == outage
    assert (is_bad_data(translated_error), is_outage(translated_error)) == (bad_data, outage)


def test_rejected_data_keeps_the_database_message_and_sqlstate() -> None:
    with pytest.raises(RejectedData) as caught, translated():
        raise pg.UniqueViolationError("duplicate key value violates unique constraint")
    assert str(caught.value) == "duplicate key value violates unique constraint"
    assert caught.value.sqlstate == "23505"
    assert isinstance(caught.value.__cause__, pg.UniqueViolationError)


def test_an_outage_says_what_the_driver_raised() -> None:
    with pytest.raises(DatabaseUnavailable) as caught, translated():
        raise TimeoutError()
    assert str(caught.value) == "TimeoutError"
    assert isinstance(caught.value.__cause__, TimeoutError)


def test_an_outage_shows_no_password_the_driver_quoted() -> None:
    quoted = "cannot connect to postgresql://app:p@ss#w rd@db:5432/x: refused"
    with pytest.raises(DatabaseUnavailable) as caught, translated():
        raise pg.InterfaceError(quoted)
    assert str(caught.value) == (
        "InterfaceError: cannot connect to postgresql://app:[Filtered]@db:5432/x: refused"
    )


def test_other_errors_pass_unchanged() -> None:
    bug = ValueError("a bug of ours")
    with pytest.raises(ValueError) as caught, translated():
        raise bug
    assert caught.value is bug
    already = DatabaseUnavailable("down")
    with pytest.raises(DatabaseUnavailable) as again, translated():
        raise already
    assert again.value is already and again.value.__cause__ is None


async def test_the_stores_raise_the_error_tree_when_the_database_is_gone(
    postgres_factory: Callable[..., EmbeddedPostgres],
) -> None:
    from mendline.sinks.postgres import AlertStore, FindingStore, migrated_pool

    server = postgres_factory()
    pool = await migrated_pool(server.url, 2)
    try:
        findings, alerts = FindingStore(pool), AlertStore(pool)
        assert await findings.claim("me", 1, 30.0) == []  # it works while the server is up
        server.stop()
        with pytest.raises(DatabaseUnavailable) as raised:
            await findings.claim("me", 1, 30.0)
        assert not isinstance(raised.value.__cause__, DatabaseError)  # the driver's, kept
        with pytest.raises(DatabaseUnavailable):
            await alerts.renew([1], 30.0, "me")
    finally:
        pool.terminate()


async def test_the_stores_raise_rejected_data_for_what_postgresql_refuses(
    database_url: str,
) -> None:
    from mendline.sinks.postgres import FindingStore, migrated_pool

    pool = await migrated_pool(database_url, 1)
    try:
        with pytest.raises(RejectedData) as raised:
            await FindingStore(pool).cached("a key with \x00 in it", "llm")
        assert raised.value.sqlstate[:2] == "22"  # a data exception
    finally:
        await pool.close()


def test_a_translating_store_may_not_have_a_method_that_cannot_translate() -> None:
    from mendline.sinks.postgres import translating

    class Store:
        def count(self) -> int:  # a driver error would come out of it unchanged
            return 0

    with pytest.raises(TypeError, match=r"Store\.count"):
        translating(Store)
