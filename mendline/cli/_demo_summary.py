"""What ``mendline demo`` reads from PostgreSQL as the pipeline works, and the story it tells
at the end: the issues with their root causes, the alerts sent, the SQL to explore it."""

from __future__ import annotations

import shutil
import textwrap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mendline.analyzers.policy import alert_severity
from mendline.cli.output import Screen, counted, printable, shorten
from mendline.schemas.alert import severity_label
from mendline.schemas.finding import confidence_label

if TYPE_CHECKING:
    import asyncpg

__all__ = ["Progress", "Summary", "explore", "read_progress", "show", "summarise"]

_EXPLORE = """\
-- What is broken, most frequent first
SELECT id, title, times_seen, culprit FROM mendline.open_issues ORDER BY times_seen DESC;
-- Each issue's root cause, with the suggested fix
SELECT issue_id, category, severity, confidence, root_cause, suggested_fix
FROM mendline.issue_findings ORDER BY issue_id;
-- What was sent to whom
SELECT issue_id, receiver, kind, severity, status, delivered_at
FROM mendline.alert_deliveries ORDER BY id;
-- The fixes proposed, with the fix policy's verdict and reasons
SELECT id, issue_id, state, verdict, approvals_needed, reasons, branch FROM mendline.fixes;
-- The events of one issue, newest first
SELECT received_at, message, context FROM mendline.issue_events
WHERE issue_id = 1 ORDER BY received_at DESC LIMIT 5;"""


@dataclass
class Progress:
    """Where the pipeline is, read from PostgreSQL."""

    events: int = 0
    issues: int = 0
    findings: int = 0
    triggers: int = 0
    unsettled: int = 0  # triggers not yet routed, analysed and followed
    delivered: int = 0
    pending: int = 0
    failed: int = 0
    patches: int = 0  # issues whose finding carries a patch
    fixes: int = 0

    def settled(self, expected_events: int, *, fixing: bool = False) -> bool:
        """Every expected event stored, every issue analysed, every alert sent or given up;
        ``fixing``: every patch proposed as a fix too."""
        return (
            self.events >= expected_events
            and self.unsettled == 0
            and self.pending == 0
            and self.findings >= self.issues
            and (not fixing or self.fixes >= self.patches)
        )

    def missing(self, expected_events: int, *, fixing: bool = False) -> str:
        """What the pipeline has not done yet, in a sentence."""
        if self.events < expected_events:
            return f"only {self.events} of {expected_events} events were stored"
        if self.findings < self.issues:
            return f"only {self.findings} of {self.issues} issues have a finding"
        if fixing and self.fixes < self.patches:
            return f"only {self.fixes} of {self.patches} patches were proposed as fixes"
        return f"{self.pending + self.unsettled} alerts were still on their way"


@dataclass
class Summary:
    """What the demo did, printed as a table or, with --json, as one object."""

    requests: int = 0
    events_logged: int = 0
    unexpected_answers: int = 0
    progress: Progress = field(default_factory=Progress)
    issues: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    received: dict[str, int] = field(default_factory=dict)
    #: The fixes the heal stage proposed, as ``mendline fix show --json`` has them.
    fixes: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    database_url: str | None = None
    passfile: str | None = None
    #: The demo's dashboard: its URL and the demo login (``url``, ``user``, ``password``).
    dashboard: dict[str, str] | None = None
    #: The DSN of the demo's relay key: a Sentry SDK given it sends to the demo's pipeline.
    relay_dsn: str | None = None
    #: With --keep: the settings that point ``mendline fix`` at the demo's policy.
    fix_settings: dict[str, str] | None = None
    complete: bool = False
    problem: str | None = None


_PROGRESS_SQL = """
SELECT (SELECT coalesce(sum(count), 0) FROM mendline.fingerprint_counts) AS events,
       (SELECT count(*) FROM mendline.issues) AS issues,
       (SELECT count(DISTINCT issue_id) FROM mendline.findings) AS findings,
       (SELECT count(*) FROM mendline.triggers) AS triggers,
       (SELECT count(*) FROM mendline.triggers t
          WHERE t.routed_at IS NULL
             OR (t.kind IN ('new_issue', 'regression')
                 AND (t.followed_at IS NULL
                      OR NOT EXISTS (SELECT 1 FROM mendline.findings f
                                     WHERE f.trigger_id = t.id)))) AS unsettled,
       (SELECT count(*) FROM mendline.deliveries WHERE status = 'delivered') AS delivered,
       (SELECT count(*) FROM mendline.deliveries WHERE status = 'pending') AS pending,
       (SELECT count(*) FROM mendline.deliveries WHERE status IN ('failed', 'dead')) AS failed,
       (SELECT count(*) FROM mendline.issue_findings WHERE fix_patch IS NOT NULL) AS patches,
       (SELECT count(*) FROM mendline.fixes) AS fixes
"""


async def read_progress(pool: asyncpg.Pool) -> Progress:
    """The pipeline's progress; the database is the demo's alone (see demo._empty_database)."""
    row = await pool.fetchrow(_PROGRESS_SQL)
    assert row is not None  # a SELECT without FROM returns its one row
    return Progress(**dict(row))


async def summarise(pool: asyncpg.Pool, summary: Summary) -> None:
    rows = await pool.fetch(
        """SELECT i.id, i.title, i.culprit, i.level, i.times_seen, f.category, f.severity,
                  f.confidence, f.root_cause, f.suggested_fix, f.fix_patch IS NOT NULL AS patch
           FROM mendline.issues i
           LEFT JOIN mendline.issue_findings f ON f.issue_id = i.id
           ORDER BY i.times_seen DESC, i.id"""
    )
    summary.issues = [dict(row) for row in rows]
    rows = await pool.fetch(
        """SELECT issue_id, receiver, kind, severity, mode, status, attempts, delivered_at
           FROM mendline.alert_deliveries ORDER BY id"""
    )
    summary.deliveries = [dict(row) for row in rows]


def show(screen: Screen, summary: Summary, psql: str) -> None:
    progress = summary.progress
    screen.say(
        f"\n{summary.requests} requests -> {summary.events_logged} errors logged -> "
        f"{progress.events} events stored -> {len(summary.issues)} issues -> "
        f"{progress.findings} findings -> {progress.delivered} alerts delivered in "
        f"{sum(summary.received.values())} messages"
        + (f", {counted(len(summary.fixes), 'fix', 'fixes')} proposed" if summary.fixes else "")
        + f" ({summary.seconds:.1f} s)"
    )
    if summary.problem:
        screen.say(f"not finished: {printable(summary.problem)}", "red")
    width = max(60, min(shutil.get_terminal_size((100, 24)).columns, 120))
    screen.say(f"\n{'#':>3} {'seen':>5}  {'severity':<9}{'category':<29}issue and root cause")
    indent = " " * 48
    for issue in summary.issues:
        # The severity its alerts carry, named as they name it: a finding's own judgement
        # (low to critical) is another scale and would not match what people were sent.
        severity = alert_severity(issue["level"], issue["severity"], "new_issue")
        screen.say(
            f"{issue['id']:>3} {issue['times_seen']:>5}  {severity_label(severity):<9}"
            f"{issue['category'] or '-':<29}{shorten(issue['title'], width - 48)}",
            _SEVERITY_STYLE.get(severity),
        )
        if issue["root_cause"]:
            label = f"cause ({confidence_label(issue['confidence'])}): "
            cause = textwrap.fill(
                printable(issue["root_cause"]),
                width=width,
                initial_indent=indent + label,
                subsequent_indent=indent + " " * len(label),
                max_lines=3,
            )
            screen.say(cause, "dim")
    sent: dict[str, int] = {}
    for delivery in summary.deliveries:
        key = f"{delivery['receiver']} {delivery['status']}"
        sent[key] = sent.get(key, 0) + 1
    screen.say(
        "\nalert deliveries: "
        + (", ".join(f"{count} {key}" for key, count in sorted(sent.items())) or "none")
        + "; the stand-ins received "
        + ", ".join(
            f"{count} {name} message{'' if count == 1 else 's'}"
            for name, count in sorted(summary.received.items())
        )
    )


def explore(screen: Screen, psql: str) -> None:
    """The SQL to explore what the demo did."""
    screen.say(f"\nexplore it with SQL ({psql}):", "bold")
    screen.say(textwrap.indent(_EXPLORE, "  "))


_SEVERITY_STYLE = {"critical": "red", "error": "red", "warning": "yellow"}
