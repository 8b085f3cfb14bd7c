"""The commands' connections to Kafka and PostgreSQL: a server that cannot be reached is one
clear MendlineError with a hint."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from mendline.cli._hints import (
    DATABASE_URL_HINT,
    KAFKA_HINT,
    MIGRATE_HINT,
    connect_failure,
    or_doctor,
)
from mendline.schemas.errors import MendlineError
from mendline.schemas.redaction import redact_url, url_secrets
from mendline.schemas.settings import Settings

if TYPE_CHECKING:
    from mendline.sinks.postgres import FindingStore

__all__ = ["connect_database", "finding_store", "on_database", "reaching_kafka"]

_T = TypeVar("_T")


@contextmanager
def reaching_kafka(settings: Settings) -> Iterator[None]:
    """Translate the Kafka client's errors into one clear MendlineError with a hint."""
    from aiokafka.errors import KafkaConnectionError, KafkaError

    where = redact_url(settings.kafka_bootstrap)
    secrets = url_secrets(settings.kafka_bootstrap)
    if settings.kafka_sasl_password is not None:
        secrets.append(settings.kafka_sasl_password.get_secret_value())
    try:
        yield
    except KafkaConnectionError as exc:
        raise MendlineError(f"cannot reach Kafka at {where}", hint=or_doctor(KAFKA_HINT)) from exc
    except KafkaError as exc:
        problem = redact_url(f"{type(exc).__name__}: {exc}".rstrip(": "), secrets)
        hint = or_doctor(KAFKA_HINT)
        raise MendlineError(f"Kafka at {where} failed: {problem}", hint=hint) from exc


async def connect_database(settings: Settings, *, for_migrate: bool = False) -> Any:
    """A connection to the database (an asyncpg Connection), once its mendline tables are
    known to be there (``for_migrate``: not needed). A database that cannot be reached, or a
    URL that is not one, is one clear MendlineError with a hint."""
    import asyncpg

    url = settings.database_url.get_secret_value()
    secrets = url_secrets(url)  # the driver may quote the password without its URL
    try:
        conn = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError) as exc:
        message, hint = connect_failure(exc, url)
        raise MendlineError(redact_url(message, secrets), hint=or_doctor(hint)) from exc
    except (asyncpg.ClientConfigurationError, ValueError) as exc:  # a malformed URL
        hint = or_doctor(DATABASE_URL_HINT)
        raise MendlineError(
            redact_url(f"the database URL {url} is not valid: {exc}", secrets), hint=hint
        ) from exc
    has_schema = await conn.fetchval("SELECT to_regclass('mendline.schema_migrations') IS NOT NULL")
    if not has_schema and not for_migrate:
        await conn.close()
        raise MendlineError("the database has no mendline tables yet", hint=MIGRATE_HINT)
    return conn


async def finding_store(settings: Settings) -> FindingStore:
    """The store of findings, on a pool, once the database is known to be there and migrated."""
    import asyncpg

    from mendline.sinks.postgres import FindingStore

    conn = await connect_database(settings)  # a clear error when unreachable or not migrated
    await conn.close()
    return FindingStore(await asyncpg.create_pool(settings.database_url.get_secret_value()))


def on_database(settings: Settings, work: Callable[[Any], Awaitable[_T]]) -> _T:
    """Run ``work(conn)`` on a connection to the migrated database, closed after."""

    async def go() -> _T:
        conn = await connect_database(settings)
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(go())
