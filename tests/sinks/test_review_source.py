"""The production context a review reads from PostgreSQL, on real issues: the sample shop's
failures stored by the consumer's path, analysed, marked, resolved and ignored; the base-name
filter done in SQL (decoys of other names, a Windows path), the innermost frame kept whatever
its file, the resolved window, merged issues left out; learned rules; a role with SELECT only;
an unreachable database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

from mendline.devstack import free_port
from mendline.schemas.errors import DatabaseUnavailable
from mendline.schemas.review import IssueRecord
from mendline.schemas.settings import load_settings
from mendline.sinks.postgres import (
    PostgresProductionSource,
    app_grants,
    connect_production,
    migrated_pool,
)
from tests.db_helpers import fresh_database
from tests.review_helpers import Production, seed_production

pytestmark = pytest.mark.integration

LINK = "https://mendline.example/issues/{id}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def production(database_url: str) -> AsyncIterator[tuple[str, Production]]:
    """One migrated database for the module with the shop's production in it."""
    async with fresh_database(database_url) as url:
        (await migrated_pool(url, 1)).terminate()
        yield url, await seed_production(url)


@pytest.fixture
async def source(production: tuple[str, Production]) -> AsyncIterator[PostgresProductionSource]:
    pool = await asyncpg.create_pool(production[0], min_size=1, max_size=2)
    try:
        yield PostgresProductionSource(pool, LINK)
    finally:
        await pool.close()


def by_id(records: list[IssueRecord]) -> dict[int, IssueRecord]:
    return {record.issue_id: record for record in records}


async def test_issues_in_files_of_those_names_most_recently_seen_first(
    production: tuple[str, Production], source: PostgresProductionSource
) -> None:
    _, seeded = production
    issues, decoys = seeded.issues, seeded.decoys
    found = await source.issues(["shop.py", "api.py"], resolved_within_days=30)
    # The bad quantity was resolved 40 days ago; myshop.py is another name; merged is out.
    assert [r.issue_id for r in found] == [
        issues["gift_wrap"],
        issues["payment_declined"],
        issues["empty_report"],
        issues["unknown_sku"],
        decoys["windows"],  # C:\srv\shop.py: its base name is shop.py
    ]
    assert found == sorted(found, key=lambda r: r.last_seen, reverse=True)
    records = by_id(found)

    gift = records[issues["gift_wrap"]]
    assert (gift.status, gift.events_7d, gift.times_seen, gift.verdict) == (
        "unresolved",
        2,
        2,
        "right",
    )
    assert gift.patch == seeded.gift_patch and gift.root_cause
    assert gift.link == f"https://mendline.example/issues/{issues['gift_wrap']}"
    (frame,) = gift.frames  # the test's own frame calling it is in another file
    assert (frame.module, frame.function) == ("mendline.sample_app.shop", "gift_wrap_fee")
    assert frame.filename.endswith("/mendline/sample_app/shop.py") and frame.lineno
    assert frame.context_line == '    return GIFT_WRAP_FEE if options["gift_wrap"] else 0.0'

    # A chain, root cause first (caught in charge), the raised exception's innermost last.
    payment = records[issues["payment_declined"]].frames
    assert [f.function for f in payment] == ["charge", "place_order", "charge"]
    assert "json.loads" in (payment[0].context_line or "")
    assert "raise PaymentDeclined" in (payment[-1].context_line or "")

    empty = records[issues["empty_report"]]
    assert empty.status == "resolved" and empty.resolved_at is not None
    assert empty.verdict == "wrong"
    assert records[issues["unknown_sku"]].status == "ignored"
    assert records[issues["unknown_sku"]].resolved_at is None

    longer = await source.issues(["shop.py"], resolved_within_days=60)
    old = by_id(longer)[issues["bad_quantity"]]
    assert old.resolved_at is not None
    assert old.resolved_at < datetime.now(UTC) - timedelta(days=39)


async def test_the_name_filter_keeps_the_innermost_frame_and_nothing_else(
    production: tuple[str, Production], source: PostgresProductionSource
) -> None:
    _, seeded = production
    found = by_id(await source.issues(["_logging.py"], resolved_within_days=30))
    payment = found[seeded.issues["payment_declined"]].frames
    # The frames of _logging.py, and the culprit in shop.py (the innermost, kept)
    assert [f.function for f in payment] == ["run_failures", "<lambda>", "charge"]
    assert payment[-1].filename.endswith("shop.py")
    assert seeded.issues["gift_wrap"] not in found  # called from the test's helper
    assert [r.issue_id for r in await source.issues(["myshop.py"], resolved_within_days=30)] == [
        seeded.decoys["myshop"]
    ]
    assert await source.issues(["nothing.py"], resolved_within_days=30) == []
    assert await source.issues([], resolved_within_days=30) == []


async def test_learned_rules_in_effect(
    production: tuple[str, Production], source: PostgresProductionSource
) -> None:
    _, seeded = production
    (rule,) = await source.learned_rules()
    assert (rule.number, rule.id) == (seeded.rules[0], f"MRL{seeded.rules[0]}")
    assert (rule.shape, rule.issue_id, rule.finding_id) == (
        "subscript-of-mapping",
        seeded.issues["gift_wrap"],
        seeded.gift_finding,
    )
    assert rule.disabled_at is None
    assert rule.link == f"https://mendline.example/issues/{seeded.issues['gift_wrap']}"


async def test_a_role_with_select_only_reads_it_all(
    production: tuple[str, Production], source: PostgresProductionSource
) -> None:
    url, seeded = production
    role, password = f"reader_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    owner = await asyncpg.connect(url)
    try:
        await owner.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        # What `mendline grants ROLE --read-only` prints, and nothing else.
        await owner.execute("\n".join(await app_grants(owner, role, read_only=True)))
        parts = urlsplit(url)
        reader_url = urlunsplit(
            parts._replace(netloc=f"{role}:{password}@{parts.hostname}:{parts.port}")
        )
        reader = await connect_production(load_settings(database_url=reader_url))
        try:
            assert await reader.pool.fetchval("SHOW default_transaction_read_only") == "on"
            names = ["shop.py", "_logging.py"]
            # The same, without links (no public URL is set for the reader)
            assert await reader.issues(names, resolved_within_days=30) == [
                replace(r, link=None) for r in await source.issues(names, resolved_within_days=30)
            ]
            assert [r.number for r in await reader.learned_rules()] == [seeded.rules[0]]
        finally:
            await reader.close()
    finally:
        await owner.execute(f"DROP OWNED BY {role}")
        await owner.execute(f"DROP ROLE {role}")
        await owner.close()


async def test_an_unreachable_database_is_unavailable() -> None:
    settings = load_settings(database_url=f"postgresql://nobody@127.0.0.1:{free_port()}/x")
    with pytest.raises(DatabaseUnavailable):
        await connect_production(settings)
