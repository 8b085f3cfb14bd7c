"""The checks mendline runs of itself, on by default, so that a stuck pipeline is never
silent: the database, the consumer group's lag on the errors topic, the oldest trigger not
analysed, the oldest alert not delivered, and the LLM's circuit breaker. Pure: checks made
from the settings; they alert like any check, with the labels ``service = mendline`` and
``tag:mendline = self`` (the shipped routes send them to the ``mendline-ops`` receiver)."""

from __future__ import annotations

from mendline.schemas.checks import Check, KafkaCheck, PostgresCheck
from mendline.schemas.settings import Settings

__all__ = ["SELF_CHECK_PREFIX", "SELF_DSN_ENV", "self_checks"]

#: The names of mendline's own checks start with it; a checks file may not use it.
SELF_CHECK_PREFIX = "mendline."
#: The variable through which the self checks reach mendline's database: the monitor sets it
#: in the environment it gives its probes (the URL may come from a settings file).
SELF_DSN_ENV = "MENDLINE_SELF_CHECK_DATABASE_URL"


# The age in seconds of the oldest trigger the analyse stage has not taken up.
_ANALYSIS_BACKLOG = """SELECT
  coalesce(floor(extract(epoch FROM now() - min(created_at))), 0)::bigint
FROM mendline.triggers
WHERE analysed_at IS NULL AND kind IN ('new_issue', 'regression', 'health_down')"""
# The age in seconds of the oldest alert not delivered: a trigger not routed, or a delivery
# past its due time.
_ALERT_BACKLOG = """SELECT greatest(
  (SELECT floor(extract(epoch FROM now() - min(created_at))) FROM mendline.triggers
   WHERE routed_at IS NULL),
  (SELECT floor(extract(epoch FROM now() - min(due_at))) FROM mendline.deliveries
   WHERE status = 'pending' AND due_at < now()),
  0)::bigint"""
# LLM analyses that fell back because the breaker was open, in the last ten minutes.
_BREAKER_OPEN = """SELECT count(*) FROM mendline.findings
WHERE fallback_code = 'breaker_open' AND created_at > now() - interval '10 minutes'"""


def self_checks(settings: Settings) -> list[Check]:
    """mendline's own checks for these settings (every minute, down after 3 failures)."""
    age = f"{settings.self_check_max_age:g}"
    checks: list[Check] = [
        PostgresCheck(
            kind="postgres",
            name="mendline.database",
            dsn_env=SELF_DSN_ENV,
            interval=60,
            severity="critical",
            service="mendline",
            tags={"mendline": "self"},
        ),
        KafkaCheck(
            kind="kafka",
            name="mendline.consumer-lag",
            group=settings.consumer_group,
            topic=settings.errors_topic,
            max_lag=settings.self_check_max_lag,
            interval=60,
            service="mendline",
            tags={"mendline": "self"},
        ),
        PostgresCheck(
            kind="postgres",
            name="mendline.analysis-backlog",
            dsn_env=SELF_DSN_ENV,
            query=_ANALYSIS_BACKLOG,
            conditions=[f"[RESULT] < {age}"],
            interval=60,
            service="mendline",
            tags={"mendline": "self"},
        ),
        PostgresCheck(
            kind="postgres",
            name="mendline.alert-backlog",
            dsn_env=SELF_DSN_ENV,
            query=_ALERT_BACKLOG,
            conditions=[f"[RESULT] < {age}"],
            interval=60,
            service="mendline",
            tags={"mendline": "self"},
        ),
        PostgresCheck(
            kind="postgres",
            name="mendline.llm-breaker",
            dsn_env=SELF_DSN_ENV,
            query=_BREAKER_OPEN,
            conditions=["[RESULT] == 0"],
            interval=60,
            severity="warning",
            service="mendline",
            tags={"mendline": "self"},
        ),
    ]
    return checks
