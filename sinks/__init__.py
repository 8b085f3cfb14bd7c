"""Everything that writes out: the PostgreSQL store, findings, migrations (alerts follow)."""

from ._admin import IssueNotFound, merge_issues, prune_events, resolve_issue
from ._findings import FINDINGS_CHANNEL, Claim, FindingNotFound, FindingStore, StoredFinding
from ._migrate import available_migrations, migrate, migrated_pool
from ._store import TRIGGERS_CHANNEL, Store, connect_store

__all__ = [
    "FINDINGS_CHANNEL",
    "TRIGGERS_CHANNEL",
    "Claim",
    "FindingNotFound",
    "FindingStore",
    "IssueNotFound",
    "Store",
    "StoredFinding",
    "available_migrations",
    "connect_store",
    "merge_issues",
    "migrate",
    "migrated_pool",
    "prune_events",
    "resolve_issue",
]
