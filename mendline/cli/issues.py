"""The ``mendline issues``, ``findings`` and ``events`` commands: what the pipeline stored, and
the audited actions on it."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from mendline.cli._actor import acting
from mendline.cli._connections import finding_store
from mendline.cli._hints import FINDINGS_HINT, ISSUES_HINT, hint_on
from mendline.cli._issue_reads import register_event_reads, register_reads
from mendline.cli._options import AS_JSON, Commands, ends_at, positive, whole_days
from mendline.cli.output import describe, print_done, print_json, printable, shorten, table
from mendline.schemas.errors import FindingNotFound, IssueNotFound
from mendline.schemas.finding import confidence_label
from mendline.schemas.issue import IgnoreCondition
from mendline.schemas.settings import Settings

if TYPE_CHECKING:
    from mendline.schemas.people import Actor
    from mendline.sinks.postgres import FindingStore, IssueActions, PeopleStore, StoredFinding

__all__ = ["finding_json", "register"]

_T = TypeVar("_T")

# The longest --for of an ignore: ten years (further is "forever").


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
    _register_actions(issue_commands)


def _register_actions(issue_commands: Any) -> None:
    resolve = issue_commands.add_parser(
        "resolve",
        parents=[AS_JSON],
        help="mark an issue resolved; a later event reopens it as a regression",
    )
    resolve.add_argument("id", type=positive)
    resolve.add_argument("--note", help="what fixed it (later similar issues are told)")
    resolve.add_argument(
        "--in-next-release",
        action="store_true",
        help="the fix ships in the next release: only events of a newer release reopen it",
    )
    resolve.set_defaults(run=_issues_resolve)
    ignore = issue_commands.add_parser(
        "ignore",
        parents=[AS_JSON],
        help="stop alerting on an issue (forever, or until a condition: it comes back as"
        " escalating); its events are still counted",
    )
    ignore.add_argument("id", type=positive)
    ignore.add_argument("--for", dest="for_", metavar="DURATION", help="e.g. 30m, 4h, 7d")
    ignore.add_argument("--until", metavar="TIME", help="an ISO 8601 time with its zone")
    ignore.add_argument(
        "--until-events", type=positive, metavar="N", help="until N more events arrive"
    )
    ignore.add_argument(
        "--until-rate", type=positive, metavar="N", help="until N events arrive within an hour"
    )
    ignore.set_defaults(run=_issues_ignore)
    reopen = issue_commands.add_parser(
        "reopen",
        aliases=["unignore", "unresolve"],
        parents=[AS_JSON],
        help="make a resolved or ignored issue unresolved again",
    )
    reopen.add_argument("id", type=positive)
    reopen.set_defaults(run=_issues_reopen)
    merge = issue_commands.add_parser(
        "merge",
        parents=[AS_JSON],
        help="merge issue SOURCE into TARGET (one service); later events of both count on"
        " TARGET; `issues unmerge SOURCE` undoes it",
    )
    merge.add_argument("target", type=positive)
    merge.add_argument("source", type=positive)
    merge.set_defaults(run=_issues_merge)
    unmerge = issue_commands.add_parser(
        "unmerge",
        parents=[AS_JSON],
        help="undo a merge: the issue gets back its fingerprints and their events",
    )
    unmerge.add_argument("id", type=positive)
    unmerge.set_defaults(run=_issues_unmerge)
    assign = issue_commands.add_parser(
        "assign", parents=[AS_JSON], help="assign an issue to user:NAME or team:LABEL"
    )
    assign.add_argument("id", type=positive)
    assign.add_argument("assignee", help="user:NAME (a bare NAME is a user) or team:LABEL")
    assign.set_defaults(run=_issues_assign)
    unassign = issue_commands.add_parser(
        "unassign", parents=[AS_JSON], help="assign an issue to no one"
    )
    unassign.add_argument("id", type=positive)
    unassign.set_defaults(run=_issues_assign, assignee=None)
    comment = issue_commands.add_parser(
        "comment", parents=[AS_JSON], help="add a comment to an issue's thread"
    )
    comment.add_argument("id", type=positive)
    comment.add_argument("text", help="the comment (1 to 10,000 characters)")
    comment.set_defaults(run=_issues_comment)


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
    register_event_reads(event_commands)
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


def _ignore_condition(args: argparse.Namespace) -> IgnoreCondition:
    """The ignore's end from ``--for``, ``--until``, ``--until-events`` and ``--until-rate``;
    UsageError for a time or duration that is not one."""
    until = ends_at(args.for_, args.until, datetime.now(UTC), zone_required=True)
    return IgnoreCondition(until=until, events=args.until_events, per_hour=args.until_rate)


def _issues_ignore(args: argparse.Namespace, settings: Settings) -> int:
    condition = _ignore_condition(args)
    with hint_on(IssueNotFound, ISSUES_HINT):
        changed = _acting(
            settings, lambda actions, actor: actions.ignore(actor, args.id, condition)
        )
    how = condition.describe()
    done = f"ignored issue {args.id} {how}" if changed else f"issue {args.id} was ignored {how}"
    print_done(
        args,
        done + " already" if not changed else done,
        issue=args.id,
        status="ignored",
        until=condition.until,
        until_events=condition.events,
        until_rate=condition.per_hour,
        changed=changed,
    )
    return 0


def _issues_reopen(args: argparse.Namespace, settings: Settings) -> int:
    with hint_on(IssueNotFound, ISSUES_HINT):
        changed = _acting(settings, lambda actions, actor: actions.reopen(actor, args.id))
    done = f"reopened issue {args.id}" if changed else f"issue {args.id} was unresolved already"
    print_done(args, done, issue=args.id, status="unresolved", changed=changed)
    return 0


def _issues_merge(args: argparse.Namespace, settings: Settings) -> int:
    with hint_on(IssueNotFound, ISSUES_HINT):
        _acting(settings, lambda actions, actor: actions.merge(actor, args.target, args.source))
    print_done(
        args,
        f"merged issue {args.source} into issue {args.target}"
        f" (undo: mendline issues unmerge {args.source})",
        issue=args.source,
        status="merged",
        merged_into=args.target,
    )
    return 0


def _issues_unmerge(args: argparse.Namespace, settings: Settings) -> int:
    with hint_on(IssueNotFound, ISSUES_HINT):
        done = _acting(settings, lambda actions, actor: actions.unmerge(actor, args.id))
    print_done(
        args,
        f"unmerged issue {args.id} from issue {done.holder}: {done.fingerprints}"
        f" fingerprint(s) and the events of {done.events} occurrence(s) moved back",
        issue=args.id,
        status="unresolved",
        taken_from=done.holder,
        fingerprints=done.fingerprints,
        events=done.events,
    )
    return 0


def _issues_resolve(args: argparse.Namespace, settings: Settings) -> int:
    with hint_on(IssueNotFound, ISSUES_HINT):
        changed = _acting(
            settings,
            lambda actions, actor: actions.resolve(
                actor, args.id, args.note, in_next_release=args.in_next_release
            ),
        )
    how = " in the next release" if args.in_next_release else ""
    done = f"resolved issue {args.id}{how}" if changed else f"issue {args.id} was resolved already"
    print_done(
        args,
        done,
        issue=args.id,
        status="resolved",
        resolution="next_release" if args.in_next_release else "now",
        note=args.note,
        changed=changed,
    )
    return 0


def _issues_assign(args: argparse.Namespace, settings: Settings) -> int:
    with hint_on(IssueNotFound, ISSUES_HINT):
        changed = _acting(
            settings, lambda actions, actor: actions.assign(actor, args.id, args.assignee)
        )
    who = printable(args.assignee) if args.assignee else "no one"
    done = f"assigned issue {args.id} to {who}"
    print_done(
        args,
        done if changed else f"issue {args.id} was assigned to {who} already",
        issue=args.id,
        assignee=args.assignee,
        changed=changed,
    )
    return 0


def _issues_comment(args: argparse.Namespace, settings: Settings) -> int:
    with hint_on(IssueNotFound, ISSUES_HINT):
        comment_id = _acting(
            settings, lambda actions, actor: actions.comment(actor, args.id, args.text)
        )
    print_done(
        args,
        f"commented on issue {args.id} (comment {comment_id})",
        issue=args.id,
        comment=comment_id,
    )
    return 0


def finding_json(stored: StoredFinding, served: bool = False) -> dict[str, Any]:
    """A stored finding as the JSON the commands print (``served``: from the store, not new)."""
    return stored.as_json(served)


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
                        confidence_label(s.finding.confidence),
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
