"""The read side of ``mendline issues``: list and show what the pipeline stored."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mendline.cli._connections import on_database
from mendline.cli._hints import ISSUES_HINT
from mendline.cli._options import AS_JSON, positive
from mendline.cli.output import print_json, printable, shorten, table
from mendline.schemas.errors import MendlineError
from mendline.schemas.settings import Settings

__all__ = ["register_reads"]


def register_reads(issue_commands: Any) -> None:
    """Add ``list`` and ``show`` to the ``issues`` subcommands."""
    issues_list = issue_commands.add_parser(
        "list", parents=[AS_JSON], help="issues, most recently seen first"
    )
    issues_list.add_argument(
        "--status",
        choices=["unresolved", "resolved", "ignored", "all"],
        default="unresolved",
        help="which issues (default: unresolved)",
    )
    issues_list.add_argument("--service", help="only this service's")
    issues_list.add_argument("--limit", type=positive, default=50, help="at most this many")
    issues_list.set_defaults(run=_issues_list)
    issues_show = issue_commands.add_parser(
        "show", parents=[AS_JSON], help="one issue with its newest finding"
    )
    issues_show.add_argument("id", type=positive)
    issues_show.set_defaults(run=_issues_show)


_ISSUE_COLUMNS = """id, service, title, culprit, level, status, times_seen, first_seen, last_seen,
    first_release, last_release, environments, regressions, resolution_note"""


def _issues_list(args: argparse.Namespace, settings: Settings) -> int:
    rows = on_database(
        settings,
        lambda conn: conn.fetch(
            f"""SELECT {_ISSUE_COLUMNS} FROM mendline.issues
                WHERE ($1 = 'all' AND status <> 'merged' OR status = $1)
                  AND ($2::text IS NULL OR service = $2)
                ORDER BY last_seen DESC LIMIT $3""",
            args.status,
            args.service,
            args.limit,
        ),
    )
    if args.json:
        for row in rows:
            print_json(dict(row))
    elif rows:
        print(
            table(
                ("ID", "STATUS", "LEVEL", "SERVICE", "EVENTS", "LAST SEEN", "TITLE"),
                (
                    (
                        r["id"],
                        r["status"],
                        r["level"],
                        shorten(r["service"], 24),
                        r["times_seen"],
                        f"{r['last_seen']:%Y-%m-%d %H:%M}",
                        shorten(r["title"], 80),
                    )
                    for r in rows
                ),
            )
        )
    else:
        print(f"no issues ({args.status})", file=sys.stderr)
    return 0


def _issues_show(args: argparse.Namespace, settings: Settings) -> int:
    async def read(conn: Any) -> tuple[Any, Any]:
        issue = await conn.fetchrow(
            f"SELECT {_ISSUE_COLUMNS} FROM mendline.issues WHERE id = $1", args.id
        )
        finding = await conn.fetchrow(
            """SELECT finding_id, analyser, category, severity, confidence, root_cause,
                      suggested_fix FROM mendline.issue_findings WHERE issue_id = $1""",
            args.id,
        )
        return issue, finding

    issue, finding = on_database(settings, read)
    if issue is None:
        raise MendlineError(f"there is no issue {args.id}", hint=ISSUES_HINT)
    if args.json:
        print_json({**dict(issue), "finding": dict(finding) if finding else None})
        return 0
    print(f"issue #{issue['id']}  {printable(issue['title'])}")
    for name in (
        "service",
        "culprit",
        "level",
        "status",
        "times_seen",
        "first_seen",
        "last_seen",
        "first_release",
        "last_release",
        "environments",
        "regressions",
        "resolution_note",
    ):
        if issue[name] not in (None, [], ""):
            print(f"  {name:16s}{printable(issue[name])}")
    if finding:
        print(
            f"  root cause      {printable(finding['root_cause'])}  ({finding['category']},"
            f" {finding['severity']}, {finding['confidence']:.2f}, finding"
            f" #{finding['finding_id']})"
        )
        print(f"  fix             {printable(finding['suggested_fix'])}")
    else:
        print("  root cause      not analysed yet")
    return 0
