"""Fixtures shared by the whole suite: the dev stack, private servers, and the loopback
stand-ins for the LLM, Slack and PagerDuty.

``MENDLINE_KAFKA_BOOTSTRAP`` / ``MENDLINE_DATABASE_URL`` point the session-wide fixtures at
external servers; the factories always start private embedded ones.
"""

from __future__ import annotations

import asyncio
import compileall
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from mendline.devstack import DevStack, EmbeddedPostgres, KafkaBroker
from tests.channel_servers import FakePagerDuty, FakeSlack, fake_pagerduty, fake_slack
from tests.llm_server import FakeLLM, fake_llm


def pytest_configure(config: pytest.Config) -> None:
    """Byte-compile mendline's modules once, in the controlling process: the suite runs the
    command line as a subprocess hundreds of times, and where PYTHONDONTWRITEBYTECODE is set
    (as on CI's machine) an editable install is otherwise compiled from source every time."""
    if hasattr(config, "workerinput"):
        return
    for folder in _SOURCE_FOLDERS:
        compileall.compile_dir(config.rootpath / folder, quiet=1, workers=1)


#: The folders mendline's packages are installed from (pyproject.toml's package-dir).
_SOURCE_FOLDERS = ("mendline", "schemas", "ingest", "analyzers", "sinks")


@pytest.fixture(scope="session")
def devstack() -> Iterator[DevStack]:
    """One broker and one database for the session (or the external ones from the env)."""
    with DevStack() as stack:
        yield stack


@pytest.fixture(scope="session")
def kafka_bootstrap(devstack: DevStack) -> str:
    """Bootstrap servers of the session's broker; use unique topic and group names."""
    return devstack.kafka_bootstrap


@pytest.fixture(scope="session")
def database_url(devstack: DevStack) -> str:
    """URL of the session's database; use unique table or schema names."""
    return devstack.database_url


@pytest.fixture
def kafka_broker_factory() -> Iterator[Callable[..., KafkaBroker]]:
    """Make private brokers, ``make(port=None, start=True)``, closed after the test."""
    brokers: list[KafkaBroker] = []

    def make(port: int | None = None, *, start: bool = True) -> KafkaBroker:
        broker = KafkaBroker(port)
        brokers.append(broker)
        if start:
            broker.start()
        return broker

    yield make
    for broker in brokers:
        broker.close()


@pytest.fixture
def postgres_factory() -> Iterator[Callable[..., EmbeddedPostgres]]:
    """Make private databases, ``make(port=None, start=True, **options)``, closed after."""
    servers: list[EmbeddedPostgres] = []

    def make(port: int | None = None, *, start: bool = True, **options: Any) -> EmbeddedPostgres:
        server = EmbeddedPostgres(port, **options)
        servers.append(server)
        if start:
            server.start()
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture(scope="session")
def migrated_template(database_url: str) -> Iterator[str]:
    """Name of a database on the session's server with every migration applied, made once
    per test process, which ``fresh_db_url`` copies."""
    from tests.db_helpers import create_migrated_template, drop_database

    name = asyncio.run(create_migrated_template(database_url))
    yield name
    asyncio.run(drop_database(database_url, name))


@pytest.fixture
async def fresh_db_url(database_url: str, migrated_template: str) -> AsyncIterator[str]:
    """URL of a new database on the session's server with every migration applied and
    nothing in it, dropped after the test."""
    from tests.db_helpers import fresh_database

    async with fresh_database(database_url, template=migrated_template) as url:
        yield url


@pytest.fixture
async def empty_db_url(database_url: str) -> AsyncIterator[str]:
    """URL of a new, empty database on the session's server (no migration applied: what
    ``mendline migrate`` starts from), dropped after the test."""
    from tests.db_helpers import fresh_database

    async with fresh_database(database_url) as url:
        yield url


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    """An OpenAI-compatible server on loopback that answers a valid finding unless scripted."""
    with fake_llm() as server:
        yield server


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """Slack's incoming webhooks and Web API on loopback; its bot token is ``slack.token``."""
    with fake_slack() as server:
        yield server


@pytest.fixture
def pagerduty() -> Iterator[FakePagerDuty]:
    """PagerDuty's Events API v2 on loopback."""
    with fake_pagerduty() as server:
        yield server
