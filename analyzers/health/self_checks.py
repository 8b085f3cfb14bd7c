"""The checks mendline runs of itself, on by default, so that a stuck pipeline is never
silent: new connections to its database and their headroom, the consumer group's lag on the
errors topic, records dead-lettered lately (events and check-ins), the oldest trigger not
analysed, the oldest alert not delivered, the LLM's circuit breaker, and the check-ins'
stream clock. Pure: checks made from the settings; they
alert like any check, with the labels ``service = mendline`` and ``tag:mendline = self`` (the
shipped routes send them to the ``mendline-ops`` receiver).

An outage of mendline's own database is not among them: the monitor records and alerts
through that database, so it cannot tell of its absence. That is seen from outside, by
``/readyz`` of each stage."""

from __future__ import annotations

from typing import Any

from mendline.schemas.alert import AlertSeverity
from mendline.schemas.checks import Check, KafkaCheck, PostgresCheck
from mendline.schemas.settings import Settings

__all__ = ["SELF_CHECK_PREFIX", "SELF_DSN_ENV", "self_checks"]

#: The names of mendline's own checks start with it; a checks file may not use it.
SELF_CHECK_PREFIX = "mendline."
#: The variable through which the self checks reach mendline's database: the monitor sets it
#: in the environment it gives its probes (the URL may come from a settings file).
SELF_DSN_ENV = "MENDLINE_SELF_CHECK_DATABASE_URL"


# The share (percent, rounded down) of the server's connection slots that client sessions
# hold: near 100, new sessions (a stage restarting, a migration) are refused.
_CONNECTIONS_USED = """SELECT (100 * count(*) / current_setting('max_connections')::int)::bigint
FROM pg_stat_activity WHERE backend_type = 'client backend'"""
# Down at this share of the connection slots taken.
_CONNECTIONS_MAX_PERCENT = 90
# The age in seconds of the check-ins' stream clock for all environments (the row '*', which
# the monitors' own ticks move every monitor_tick_interval). No row yet, before the first
# tick is read, is age 0: a clock that never started is not a stopped one.
_CLOCK_AGE = """SELECT coalesce(
  (SELECT floor(extract(epoch FROM now() - newest)) FROM mendline.checkin_clock
   WHERE environment = '*'),
  0)::bigint"""
# The stream clock may lag the ticks by this many tick intervals, and at least _CLOCK_FLOOR
# seconds (a rebalance of the check-ins group, a burst of check-ins), before it counts.
_CLOCK_TICKS = 5
_CLOCK_FLOOR = 120.0
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


# A dead-lettered record keeps its DLQ's check failing this long: ten runs, so that the
# default three failures in a row take it down and one record is an alert, which clears by
# itself once nothing more was dead-lettered for as long.
_DEAD_LETTER_WINDOW = 600.0


def _clock_max_age(settings: Settings) -> float:
    # Seconds the stream clock may stand still before heartbeats count as not judged.
    return max(_CLOCK_TICKS * settings.monitor_tick_interval, _CLOCK_FLOOR)


# What every self check shares: every minute, labelled as mendline's own for the routes.
_OWN: dict[str, Any] = {"interval": 60, "service": "mendline", "tags": {"mendline": "self"}}


def _query(
    name: str, query: str, *conditions: str, severity: AlertSeverity = "error"
) -> PostgresCheck:
    """A self check that runs ``query`` on mendline's own database."""
    return PostgresCheck(
        kind="postgres",
        name=name,
        dsn_env=SELF_DSN_ENV,
        query=query,
        conditions=list(conditions),
        severity=severity,
        **_OWN,
    )


def self_checks(settings: Settings) -> list[Check]:
    """mendline's own checks for these settings (every minute, down after 3 failures)."""
    age = f"{settings.self_check_max_age:g}"
    dead_letters = (
        ("mendline.dead-letters", settings.dlq_topic),
        ("mendline.checkin-dead-letters", settings.checkins_dlq_topic),
    )
    return [
        _query(
            "mendline.database",
            _CONNECTIONS_USED,
            "[CONNECTED] == true",
            f"[RESULT] < {_CONNECTIONS_MAX_PERCENT}",
            severity="critical",
        ),
        KafkaCheck(
            kind="kafka",
            name="mendline.consumer-lag",
            group=settings.consumer_group,
            topic=settings.errors_topic,
            max_lag=settings.self_check_max_lag,
            **_OWN,
        ),
        *(
            KafkaCheck(
                kind="kafka",
                name=name,
                topic=topic,
                window=_DEAD_LETTER_WINDOW,
                conditions=["[RECENT] == 0"],
                severity="warning",
                **_OWN,
            )
            for name, topic in dead_letters
        ),
        _query("mendline.analysis-backlog", _ANALYSIS_BACKLOG, f"[RESULT] < {age}"),
        _query("mendline.alert-backlog", _ALERT_BACKLOG, f"[RESULT] < {age}"),
        _query("mendline.llm-breaker", _BREAKER_OPEN, "[RESULT] == 0", severity="warning"),
        _query("mendline.checkin-clock", _CLOCK_AGE, f"[RESULT] < {_clock_max_age(settings):g}"),
    ]
