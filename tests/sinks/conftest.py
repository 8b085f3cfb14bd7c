"""Fixtures of the store tests: a connection to the test's database, and its issue actions."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from mendline.sinks.postgres import IssueActions
from tests.db_helpers import issue_actions


@pytest.fixture
async def db(fresh_db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test's database, to read what the store did."""
    conn = await asyncpg.connect(fresh_db_url)
    yield conn
    await conn.close()


@pytest.fixture
async def actions(fresh_db_url: str) -> AsyncIterator[IssueActions]:
    """The issue actions on the test's database (a module may bring its own)."""
    async with issue_actions(fresh_db_url) as actions:
        yield actions
