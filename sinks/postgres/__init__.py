"""PostgreSQL: the event store, the analysis and alert work queues, the health checks' store,
the audited actions on issues, findings and events, the read side of issues and events, the
fixes and their moves, remediation runs, alert silences, the audit trail, people with their
passwords and API tokens, the dashboard's sessions and failed logins and its feed of what changed
(LISTEN/NOTIFY), the versioned migrations of schema ``mendline`` and the grants of a role that
does not own it."""

from mendline.sinks.postgres._admin import IssueActions, IssueNotFound
from mendline.sinks.postgres._alert_marks import Delivered, GiveUp, Mark, Retry, Suppressed
from mendline.sinks.postgres._alert_reads import DeliveryCount, DeliveryRow
from mendline.sinks.postgres._alerts import (
    AlertStore,
    DueDelivery,
    RoutingResult,
    route_key,
)
from mendline.sinks.postgres._audit import (
    AUDIT_LOCK,
    AuditedStore,
    AuditStore,
    AuditWriter,
    append_audit,
    connect_audit,
)
from mendline.sinks.postgres._checkins import ALL_ENVIRONMENTS, CheckinStore, connect_checkins
from mendline.sinks.postgres._connect import (
    connect_alerts,
    connect_findings,
    connect_health,
    connect_people,
    connect_remediations,
)
from mendline.sinks.postgres._dashboard import (
    DashboardReads,
    FindingVerdicts,
    FixAwaiting,
    FixOutcomes,
    LevelCount,
    Pipeline,
)
from mendline.sinks.postgres._errors import (
    is_bad_data,
    is_outage,
    translate,
    translated,
    translating,
)
from mendline.sinks.postgres._findings import (
    FINDINGS_CHANNEL,
    Claim,
    FindingNotFound,
    FindingStore,
    StoredFinding,
)
from mendline.sinks.postgres._fixes import FixStore, Handover, StoredFix, connect_fixes
from mendline.sinks.postgres._grants import app_grants, grant_statements
from mendline.sinks.postgres._health import (
    DueSlot,
    HealthStore,
    PruneResult,
    RecordOutcome,
    SyncResult,
)
from mendline.sinks.postgres._health_reads import (
    CheckCheckin,
    CheckSummary,
    HourlyResponse,
    StoredResult,
)
from mendline.sinks.postgres._issue_reads import EventPage, IssuePage, IssueReads
from mendline.sinks.postgres._migrate import (
    MIGRATIONS_LOCK,
    available_migrations,
    migrate,
    migrated_pool,
)
from mendline.sinks.postgres._notify import (
    CHANGE_KINDS,
    WEB_CHANNEL,
    Change,
    ChangeFeed,
    Listener,
    parse_change,
)
from mendline.sinks.postgres._people import (
    PasswordCheck,
    PasswordRefusal,
    PeopleStore,
    TokenInfo,
    User,
)
from mendline.sinks.postgres._relay_keys import RelayKeyStore, check_origin_pattern
from mendline.sinks.postgres._remediations import (
    AUDIT_OUTPUT_LIMIT,
    REMEDIATIONS_CHANNEL,
    START_LOCK,
    Asked,
    RemediationStore,
    Trouble,
)
from mendline.sinks.postgres._review import PostgresProductionSource, connect_production
from mendline.sinks.postgres._review_rules import ReviewRuleStore
from mendline.sinks.postgres._sessions import Session, SessionStore, session_id
from mendline.sinks.postgres._silences import SilenceStore
from mendline.sinks.postgres._store import TRIGGERS_CHANNEL, Store, connect_store

__all__ = [
    "ALL_ENVIRONMENTS",
    "AUDIT_LOCK",
    "AUDIT_OUTPUT_LIMIT",
    "CHANGE_KINDS",
    "FINDINGS_CHANNEL",
    "MIGRATIONS_LOCK",
    "REMEDIATIONS_CHANNEL",
    "START_LOCK",
    "TRIGGERS_CHANNEL",
    "WEB_CHANNEL",
    "AlertStore",
    "Asked",
    "AuditStore",
    "AuditWriter",
    "AuditedStore",
    "Change",
    "ChangeFeed",
    "CheckCheckin",
    "CheckSummary",
    "CheckinStore",
    "Claim",
    "DashboardReads",
    "Delivered",
    "DeliveryCount",
    "DeliveryRow",
    "DueDelivery",
    "DueSlot",
    "EventPage",
    "FindingNotFound",
    "FindingStore",
    "FindingVerdicts",
    "FixAwaiting",
    "FixOutcomes",
    "FixStore",
    "GiveUp",
    "Handover",
    "HealthStore",
    "HourlyResponse",
    "IssueActions",
    "IssueNotFound",
    "IssuePage",
    "IssueReads",
    "LevelCount",
    "Listener",
    "Mark",
    "PasswordCheck",
    "PasswordRefusal",
    "PeopleStore",
    "Pipeline",
    "PostgresProductionSource",
    "PruneResult",
    "RecordOutcome",
    "RelayKeyStore",
    "RemediationStore",
    "Retry",
    "ReviewRuleStore",
    "RoutingResult",
    "Session",
    "SessionStore",
    "SilenceStore",
    "Store",
    "StoredFinding",
    "StoredFix",
    "StoredResult",
    "Suppressed",
    "SyncResult",
    "TokenInfo",
    "Trouble",
    "User",
    "app_grants",
    "append_audit",
    "available_migrations",
    "check_origin_pattern",
    "connect_alerts",
    "connect_audit",
    "connect_checkins",
    "connect_findings",
    "connect_fixes",
    "connect_health",
    "connect_people",
    "connect_production",
    "connect_remediations",
    "connect_store",
    "grant_statements",
    "is_bad_data",
    "is_outage",
    "migrate",
    "migrated_pool",
    "parse_change",
    "route_key",
    "session_id",
    "translate",
    "translated",
    "translating",
]
