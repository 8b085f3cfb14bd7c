"""The ``mendline issues``, ``findings`` and ``events`` commands: what the pipeline stored, and
the audited actions on it."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from mendline.cli._actor import acting
from mendline.cli._connections import finding_store
from mendline.cli._hints import FINDINGS_HINT, ISSUES_HINT, hint_on
from mendline.cli._issue_reads import register_reads
from mendline.cli._options import AS_JSON, Commands, positive, whole_days
from mendline.cli.output import describe, print_done, print_json, shorten, table
from mendline.schemas.errors import FindingNotFound, IssueNotFound
from mendline.schemas.settings import Settings

if TYPE_CHECKING:
    from mendline.schemas.people import Actor
    from mendline.sinks.postgres import FindingStore, IssueActions, PeopleStore

__all__ = ["finding_json", "register"]

_T = TypeVar("_T")


def register(commands: Commands) -> None:
    """Add ``issues``, ``findings`` and ``events`` with their subcommands to the top-level
    ``commands``."""
    _register_issues(commands)
    _register_findings(commands)
    _register_events(commands)


def _register_issues(commands: Commands) -> None:
    issues = commands.add_parser("issues", help="work with issues")
    issue_commands = issues.add_subparsers(dest="issues_command", required=True)
    register_reads(issue_commands)
    ignore = issue_commands.add_parser(
        "ignore", parents=[AS_JSON], help="stop alerting on an issue; its events are still counted"
    )
    ignore.add_argument("id", type=positive)
    ignore.set_defaults(run=_issues_ignore)
    merge = issue_commands.add_parser(
        "merge",
        parents=[AS_JSON],
        help="merge issue SOURCE into TARGET; later events of both count on TARGET",
    )
    merge.add_argument("target", type=positive)
    merge.add_argument("source", type=positive)
    merge.set_defaults(run=_issues_merge)
    resolve = issue_commands.add_parser(
        "resolve",
        parents=[AS_JSON],
        help="mark an issue resolved; a later event reopens it as a regression",
    )
    resolve.add_argument("id", type=positive)
    resolve.add_argument("--note", help="what fixed it (later similar issues are told)")
    resolve.set_defaults(run=_issues_resolve)


def _register_findings(commands: Commands) -> None:
    findings = commands.add_parser("findings", help="read and judge root-cause findings")
    finding_commands = findings.add_subparsers(dest="findings_command", required=True)
    findings_list = finding_commands.add_parser(
        "list", parents=[AS_JSON], help="the newest findings"
    )
    findings_list.add_argument("--issue", type=positive, help="only this issue's")
    findings_list.add_argument("--limit", type=positive, default=20, help="at most this many")
    findings_list.set_defaults(run=_findings_list)
    findings_show = finding_commands.add_parser(
        "show", parents=[AS_JSON], help="one finding, whole"
    )
    findings_show.add_argument("id", type=positive)
    findings_show.set_defaults(run=_findings_show)
    mark = finding_commands.add_parser(
        "mark",
        parents=[AS_JSON],
        help="say a finding was right or wrong; similar issues are analysed with it",
    )
    mark.add_argument("id", type=positive)
    mark.add_argument("verdict", choices=["right", "wrong"])
    mark.add_argument("--note", help="what was really going on")
    mark.set_defaults(run=_findings_mark)


def _register_events(commands: Commands) -> None:
    events = commands.add_parser("events", help="manage stored events")
    event_commands = events.add_subparsers(dest="events_command", required=True)
    prune = event_commands.add_parser(
        "prune", parents=[AS_JSON], help="drop the days of events older than the retention"
    )
    prune.add_argument(
        "--days", type=whole_days, help="keep this many days (default: MENDLINE_RETENTION_DAYS)"
    )
    prune.set_defaults(run=_events_prune)


def _on_findings(settings: Settings, work: Callable[[FindingStore], Awaitable[_T]]) -> _T:
    """``work(store)`` on the store of findings, closed after."""

    async def go() -> _T:
        store = await finding_store(settings)
        try:
            return await work(store)
        finally:
            await store.pool.close()

    return asyncio.run(go())


def _acting(settings: Settings, work: Callable[[IssueActions, Actor], Awaitable[_T]]) -> _T:
    """``work(actions, actor)``: an audited action as the actor the settings say (the token's
    user, or the local OS user), on the people store's pool, closed after."""
    from mendline.sinks.postgres import IssueActions

    def on(people: PeopleStore, actor: Actor) -> Awaitable[_T]:
        return work(IssueActions(people.pool, people.audit, people.origin), actor)

    return acting(settings, on)


def _issues_ignore(args: argparse.Namespace, settings: Settings) -> int:
    with hint_on(IssueNotFound, ISSUES_HINT):
        changed = _acting(settings, lambda actions, actor: actions.ignore(actor, args.id))
    done = f"ignored issue {args.id}" if changed else f"issue {args.id} was ignored already"
    print_done(args, done, issue=args.id, status="ignored", changed=changed)
    return 0


def _issues_merge(args: argparse.Namespace, settings: Settings) -> int:
    with hint_on(IssueNotFound, ISSUES_HINT):
        _acting(settings, lambda actions, actor: actions.merge(actor, args.target, args.source))
    print_done(
        args,
        f"merged issue {args.source} into {args.target}",
        issue=args.source,
        status="merged",
        merged_into=args.target,
    )
    return 0


def _issues_resolve(args: argparse.Namespace, settings: Settings) -> int:
    with hint_on(IssueNotFound, ISSUES_HINT):
        changed = _acting(
            settings, lambda actions, actor: actions.resolve(actor, args.id, args.note)
        )
    done = f"resolved issue {args.id}" if changed else f"issue {args.id} was resolved already"
    print_done(args, done, issue=args.id, status="resolved", note=args.note, changed=changed)
    return 0


def finding_json(stored: Any, served: bool = False) -> dict[str, Any]:
    """A stored finding as the JSON the commands print (``served``: from the store, not new)."""
    return {
        "id": stored.id,
        "issue_id": stored.issue_id,
        "served_from_store": served,
        "cached_from": stored.cached_from,
        "verdict": stored.verdict,
        "verdict_note": stored.verdict_note,
        **stored.finding.model_dump(mode="json"),
    }


def _findings_list(args: argparse.Namespace, settings: Settings) -> int:
    found = _on_findings(settings, lambda store: store.list(args.issue, args.limit))
    if args.json:
        for stored in found:
            shown = finding_json(stored)
            shown.pop("prompt", None)
            print_json(shown)
    elif found:
        print(
            table(
                ("ID", "ISSUE", "SEVERITY", "CATEGORY", "CONFIDENCE", "ROOT CAUSE"),
                (
                    (
                        s.id,
                        s.issue_id,
                        s.finding.severity,
                        s.finding.category,
                        f"{s.finding.confidence:.2f}",
                        shorten(s.finding.root_cause, 90),
                    )
                    for s in found
                ),
            )
        )
    else:
        print("no findings", file=sys.stderr)
    return 0


def _findings_show(args: argparse.Namespace, settings: Settings) -> int:
    with hint_on(FindingNotFound, FINDINGS_HINT):
        stored = _on_findings(settings, lambda store: store.get(args.id))
    if args.json:
        print_json(finding_json(stored))
    else:
        print(describe(stored))
    return 0


def _findings_mark(args: argparse.Namespace, settings: Settings) -> int:
    with hint_on(FindingNotFound, FINDINGS_HINT):
        changed = _acting(
            settings,
            lambda actions, actor: actions.mark_finding(actor, args.id, args.verdict, args.note),
        )
    done = f"marked finding {args.id} {args.verdict}"
    print_done(
        args,
        done if changed else f"finding {args.id} was marked {args.verdict} already",
        finding=args.id,
        verdict=args.verdict,
        note=args.note,
        changed=changed,
    )
    return 0


def _events_prune(args: argparse.Namespace, settings: Settings) -> int:
    days = args.days if args.days is not None else settings.retention_days
    dropped = _acting(settings, lambda actions, actor: actions.prune_events(actor, days))
    print_done(
        args,
        f"dropped {len(dropped)} day(s) of events older than {days} days",
        days=days,
        dropped=dropped,
    )
    return 0
