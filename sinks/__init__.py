"""Everything that writes out: the PostgreSQL store and its migrations (alert channels follow)."""

from ._admin import IssueNotFound, merge_issues, prune_events
from ._migrate import available_migrations, migrate
from ._store import Store, connect_store

__all__ = [
    "IssueNotFound",
    "Store",
    "available_migrations",
    "connect_store",
    "merge_issues",
    "migrate",
    "prune_events",
]
