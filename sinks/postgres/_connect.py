"""The stores of the analysis, alert and monitor stages, people and remediations, each on a
new pool of a migrated database."""

from __future__ import annotations

from mendline.schemas.settings import Settings
from mendline.sinks.postgres._alerts import AlertStore
from mendline.sinks.postgres._audit import AuditWriter, append_audit
from mendline.sinks.postgres._findings import FindingStore
from mendline.sinks.postgres._health import HealthStore
from mendline.sinks.postgres._migrate import migrated_pool
from mendline.sinks.postgres._people import PeopleStore
from mendline.sinks.postgres._remediations import RemediationStore

__all__ = [
    "connect_alerts",
    "connect_findings",
    "connect_health",
    "connect_people",
    "connect_remediations",
]


async def connect_findings(settings: Settings, size: int) -> FindingStore:
    """A FindingStore on a new pool of ``size`` connections, after applying pending
    migrations."""
    pool = await migrated_pool(settings.database_url.get_secret_value(), size)
    return FindingStore(pool)


async def connect_alerts(settings: Settings, size: int = 6) -> AlertStore:
    """An AlertStore on a new pool, after applying pending migrations."""
    pool = await migrated_pool(settings.database_url.get_secret_value(), size)
    return AlertStore(pool, settings.issue_link_template)


async def connect_health(settings: Settings, size: int = 4) -> HealthStore:
    """A HealthStore on a new pool, after applying pending migrations, with the result
    partitions of today and the next two days in place."""
    pool = await migrated_pool(settings.database_url.get_secret_value(), size)
    store = HealthStore(pool)
    await store.ensure_partitions()
    return store


async def connect_people(
    settings: Settings, audit: AuditWriter = append_audit, origin: str = "", size: int = 2
) -> PeopleStore:
    """A PeopleStore on a new pool, after applying pending migrations; ``audit`` writes each
    change's audit row in its transaction (``append_audit``)."""
    pool = await migrated_pool(settings.database_url.get_secret_value(), size)
    return PeopleStore(pool, audit, origin)


async def connect_remediations(
    settings: Settings, audit: AuditWriter = append_audit, origin: str = "", size: int = 2
) -> RemediationStore:
    """A RemediationStore on a new pool, after applying pending migrations; ``audit`` writes
    each change's audit row in its transaction (``append_audit``)."""
    pool = await migrated_pool(settings.database_url.get_secret_value(), size)
    return RemediationStore(pool, audit, origin)
