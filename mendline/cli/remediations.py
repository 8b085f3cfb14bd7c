"""The ``mendline remediations`` commands: the runs of runbook remediations, and approving
or declining the ones that wait for a person.

Runs are requested by the stage that watches checks and issues (wired later); here people
see them and let them go. Approving does not run anything itself: it lets a worker start
the run (``RemediationStore.start``)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from mendline.analyzers.policy.people import authorize
from mendline.cli._actor import acting, audit_writer, cli_origin
from mendline.cli._options import AS_JSON, Commands, positive
from mendline.cli.output import print_done, print_json, shorten, table
from mendline.schemas.people import Actor
from mendline.schemas.remediation import RUN_STATES, RemediationRun
from mendline.schemas.settings import Settings

if TYPE_CHECKING:
    from mendline.sinks.postgres import PeopleStore, RemediationStore

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add ``remediations`` with ``list``, ``approve`` and ``decline`` to ``commands``."""
    group = commands.add_parser(
        "remediations", help="runbook remediations' runs; approve the ones waiting for a person"
    )
    group_commands = group.add_subparsers(dest="remediations_command", required=True)
    listing = group_commands.add_parser("list", parents=[AS_JSON], help="the runs, newest first")
    listing.add_argument("--state", choices=RUN_STATES, help="only runs in this state")
    listing.add_argument(
        "--target",
        metavar="T",
        help="only runs on this target (a remediation's target, else its name)",
    )
    listing.add_argument(
        "--limit", type=positive, default=50, metavar="N", help="at most N runs (default 50)"
    )
    listing.set_defaults(run=_list)
    approve = group_commands.add_parser(
        "approve", parents=[AS_JSON], help="let a requested run go (approver)"
    )
    approve.add_argument("run_id", type=positive, metavar="RUN_ID")
    approve.set_defaults(run=_approve)
    decline = group_commands.add_parser(
        "decline", parents=[AS_JSON], help="refuse a run that has not started (approver)"
    )
    decline.add_argument("run_id", type=positive, metavar="RUN_ID")
    decline.add_argument("--reason", default="", help="why, for the run and the audit trail")
    decline.set_defaults(run=_decline)


def _store(people: PeopleStore) -> RemediationStore:
    """The remediation store on the people store's pool (closed with it)."""
    from mendline.sinks.postgres import RemediationStore

    return RemediationStore(people.pool, audit_writer(), cli_origin())


def _run_json(run: RemediationRun) -> dict[str, Any]:
    return run.model_dump(mode="json")


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(people: PeopleStore, actor: Actor) -> list[RemediationRun]:
        authorize(actor, "remediation.read")
        return await _store(people).list(state=args.state, target=args.target, limit=args.limit)

    runs = acting(settings, work)
    if args.json:
        for run in runs:
            print_json(_run_json(run))
    elif runs:
        rows = [
            (
                run.id,
                run.state,
                shorten(run.name, 30),
                shorten(run.target, 30),
                f"{run.requested_at:%Y-%m-%d %H:%M}",
                shorten(run.approved_by or run.requested_by, 20),
                shorten(_said(run), 80),
            )
            for run in runs
        ]
        print(table(("ID", "STATE", "NAME", "TARGET", "REQUESTED", "BY", "WHAT HAPPENED"), rows))
    else:
        print("no remediation runs", file=sys.stderr)
    return 0


def _said(run: RemediationRun) -> str:
    """What a person wants to know of a run: what it did, else what asked for it and why
    it is where it is."""
    if run.outcome is not None:
        verified = {None: "", True: "; the check passed after", False: "; it did not help"}
        return run.outcome.detail + verified[run.verified]
    return ": ".join(filter(None, (run.trigger, "; ".join(run.reasons))))


def _approve(args: argparse.Namespace, settings: Settings) -> int:
    run = acting(settings, lambda people, actor: _store(people).approve(actor, args.run_id))
    print_done(
        args,
        f"approved remediation run {run.id} ({shorten(run.name, 60)} on"
        f" {shorten(run.target, 60)}): a worker starts it",
        **_run_json(run),
    )
    return 0


def _decline(args: argparse.Namespace, settings: Settings) -> int:
    run = acting(
        settings,
        lambda people, actor: _store(people).decline(actor, args.run_id, args.reason),
    )
    print_done(
        args,
        f"declined remediation run {run.id} ({shorten(run.name, 60)} on {shorten(run.target, 60)})",
        **_run_json(run),
    )
    return 0
