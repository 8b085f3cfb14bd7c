"""The served dashboard, on a fresh database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.web.web_helpers import ServedWeb, served_web


@pytest.fixture
async def web(fresh_db_url: str) -> AsyncIterator[ServedWeb]:
    """The dashboard on a fresh database, with one user (and token) per role."""
    async with served_web(fresh_db_url) as served:
        yield served
