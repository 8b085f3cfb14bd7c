"""The ``mendline fix`` commands: self-healing fixes. ``fix list`` and ``fix show`` read
fixes; ``fix propose``, ``approve``, ``reject`` and ``deployed`` move them, as the acting
person (audited by the fix store); ``fix policy check``, ``example`` and ``explain`` for the
fix policy file. Each subgroup of ``fix`` registers in its own function."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from mendline.analyzers.policy import (
    SHIPPED_POLICY,
    authorize,
    explain,
    load_policy,
    policy_warnings,
    shipped_policy_text,
)
from mendline.cli._actor import acting, cli_origin
from mendline.cli._fix_view import FIX_COLUMNS, describe_fix, fix_row
from mendline.cli._hints import FINDINGS_HINT, hint_on
from mendline.cli._options import AS_JSON, Commands, positive
from mendline.cli.issues import finding_json
from mendline.cli.output import (
    colour_for,
    counted,
    print_done,
    print_error,
    print_json,
    print_problems,
    printable,
    table,
)
from mendline.schemas.duration import format_duration
from mendline.schemas.errors import (
    ConfigError,
    FindingNotFound,
    ForgeError,
    IllegalTransition,
    PatchRefused,
    RejectedData,
)
from mendline.schemas.fix import FIX_STATES, PolicyDecision
from mendline.schemas.fixpolicy import FixPolicy, Remediation, Repository
from mendline.schemas.settings import Settings
from mendline.schemas.tomlfile import either

if TYPE_CHECKING:
    from mendline.schemas.people import Actor
    from mendline.sinks.postgres import FixStore, Handover, PeopleStore, StoredFinding, StoredFix
    from mendline.stages.heal import Healer

__all__ = ["register"]

_HINT = (
    "the README's section on the fix policy shows the format;"
    " `mendline fix policy example` prints the shipped default to start from"
)
_NO_REPOSITORY = "no repository: no fix is applied until [[repositories]] names one"
_FORGE_HINT = "the fix policy's repository (`mendline fix policy check`) and git's message say why"
_POLICY_PROBLEMS_HINT = "`mendline fix policy check` shows every problem of the fix policy file"
# The window of the policy's [auto] max_per_hour.

_T = TypeVar("_T")


def register(commands: Commands) -> None:
    """Add ``fix`` and its subgroups (``fix policy check``, ``fix policy example``) to the
    top-level ``commands``."""
    fix = commands.add_parser(
        "fix", help="self-healing fixes: list, show, propose, approve; the fix policy"
    )
    fix_commands = fix.add_subparsers(dest="fix_command", required=True)
    _register_reading(fix_commands)
    _register_moves(fix_commands)
    _register_policy(fix_commands)


def _register_reading(fix_commands: Commands) -> None:
    listing = fix_commands.add_parser("list", parents=[AS_JSON], help="the fixes, newest first")
    listing.add_argument("--state", choices=FIX_STATES, help="only fixes in this state")
    listing.add_argument("--issue", type=positive, metavar="ID", help="only this issue's fixes")
    listing.add_argument(
        "--limit", type=positive, default=50, metavar="N", help="at most N fixes (default 50)"
    )
    listing.add_argument(
        "--before", type=positive, metavar="ID", help="the fixes before this id (the next page)"
    )
    listing.set_defaults(run=_list)
    show = fix_commands.add_parser(
        "show",
        parents=[AS_JSON],
        help="one fix, whole: the policy's reasons, the patch, its verification and delivery",
    )
    show.add_argument("id", type=positive, metavar="ID")
    show.set_defaults(run=_show)


def _register_moves(fix_commands: Commands) -> None:
    propose = fix_commands.add_parser(
        "propose",
        parents=[AS_JSON],
        help="propose a fix of a finding's patch; the fix policy decides (responder)",
    )
    propose.add_argument("finding_id", type=positive, metavar="FINDING_ID")
    propose.set_defaults(run=_propose)
    approve = fix_commands.add_parser(
        "approve", parents=[AS_JSON], help="approve a proposed fix (approver)"
    )
    approve.add_argument("id", type=positive, metavar="ID")
    approve.add_argument("--note", help="what you checked, for the fix and the audit trail")
    approve.set_defaults(run=_approve)
    reject = fix_commands.add_parser(
        "reject", parents=[AS_JSON], help="reject a proposed or approved fix (approver)"
    )
    reject.add_argument("id", type=positive, metavar="ID")
    reject.add_argument("--reason", required=True, help="why, for the fix and the audit trail")
    reject.set_defaults(run=_reject)
    deployed = fix_commands.add_parser(
        "deployed", parents=[AS_JSON], help="say an applied fix is in production (approver)"
    )
    deployed.add_argument("id", type=positive, metavar="ID")
    deployed.add_argument("--release", required=True, help="the release that carries it")
    deployed.set_defaults(run=_deployed)
    applying = fix_commands.add_parser(
        "apply",
        parents=[AS_JSON],
        help="apply a fix now: worktree, verify, commit, deliver (approver)",
    )
    applying.add_argument("id", type=positive, metavar="ID")
    applying.set_defaults(run=_apply)
    rollback = fix_commands.add_parser(
        "rollback",
        parents=[AS_JSON],
        help="undo an applied fix with a revert commit, delivered like the fix (approver)",
    )
    rollback.add_argument("id", type=positive, metavar="ID")
    rollback.add_argument("--reason", required=True, help="why, for the commit and the audit trail")
    rollback.set_defaults(run=_rollback)


def _register_policy(fix_commands: Commands) -> None:
    policy = fix_commands.add_parser(
        "policy", help="check the fix policy file, print the shipped default"
    )
    policy_commands = policy.add_subparsers(dest="policy_command", required=True)

    check = policy_commands.add_parser(
        "check",
        parents=[AS_JSON],
        help="validate a fix policy file; summarise its rules, repositories and remediations",
    )
    check.add_argument(
        "file",
        nargs="?",
        type=Path,
        metavar="FILE",
        help="default: MENDLINE_FIX_POLICY_FILE, else the shipped default",
    )
    check.set_defaults(run=_policy_check)

    example = policy_commands.add_parser(
        "example", help="print the shipped default policy, with its comments"
    )
    # It reads no setting: it works even when they do not load.
    example.set_defaults(run=_policy_example, run_without_settings=_example_anyway)

    explaining = policy_commands.add_parser(
        "explain",
        parents=[AS_JSON],
        help="the decision the fix policy would make now on a finding's patch, changing nothing",
    )
    explaining.add_argument("finding_id", type=positive, metavar="FINDING_ID")
    explaining.set_defaults(run=_policy_explain)


# -- reading and moving fixes ------------------------------------------------------------


def _on_fixes(settings: Settings, work: Callable[[FixStore, Actor], Awaitable[_T]]) -> _T:
    """``work(fixes, actor)`` as the actor the settings say (the token's user, or the local
    OS user), on the people store's pool, closed after."""
    from mendline.sinks.postgres import FixStore

    def on(people: PeopleStore, actor: Actor) -> Awaitable[_T]:
        return work(FixStore(people.pool, people.audit, people.origin), actor)

    return acting(settings, on)


def _finding(fixes: FixStore, finding_id: int) -> Awaitable[StoredFinding]:
    """The stored finding ``finding_id``, on the fix store's pool."""
    from mendline.sinks.postgres import FindingStore

    return FindingStore(fixes.pool).get(finding_id)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(fixes: FixStore, actor: Actor) -> list[StoredFix]:
        authorize(actor, "fix.read")
        return await fixes.list(
            state=args.state, issue_id=args.issue, before_id=args.before, limit=args.limit
        )

    found = _on_fixes(settings, work)
    if args.json:
        for fix in found:
            print_json(fix.as_json())
    elif found:
        now = datetime.now(UTC)
        print(table(FIX_COLUMNS, [fix_row(fix, now) for fix in found]))
    else:
        print("no fixes", file=sys.stderr)
    if len(found) == args.limit:
        print(f"next: {_next_page(args, found[-1].id)}", file=sys.stderr)
    return 0


def _next_page(args: argparse.Namespace, last_id: int) -> str:
    """The command that lists the next page: the same filters, before ``last_id``."""
    words = ["mendline fix list"]
    words += [f"--state {args.state}"] if args.state else []
    words += [f"--issue {args.issue}"] if args.issue else []
    words += [f"--limit {args.limit}", f"--before {last_id}"]
    words += ["--json"] if args.json else []
    return " ".join(words)


def _show(args: argparse.Namespace, settings: Settings) -> int:
    async def work(fixes: FixStore, actor: Actor) -> tuple[StoredFix, str | None, StoredFinding]:
        authorize(actor, "fix.read")
        fix = await fixes.get(args.id)
        return fix, await fixes.issue_title(fix.issue_id), await _finding(fixes, fix.finding_id)

    fix, title, finding = _on_fixes(settings, work)
    if args.json:
        shown = finding_json(finding)
        shown.pop("prompt", None)
        print_json(
            {**fix.as_json(), "issue": {"id": fix.issue_id, "title": title}, "finding": shown}
        )
        return 0
    for line in describe_fix(fix, title, finding, datetime.now(UTC), colour_for(sys.stdout)):
        print(line)
    return 0


def _policy(settings: Settings) -> tuple[FixPolicy, str]:
    """The fix policy the settings name (else the shipped default), and where it is from."""
    path = settings.fix_policy_file
    with hint_on(ConfigError, _POLICY_PROBLEMS_HINT):
        policy = load_policy(path)
    return policy, str(path) if path is not None else SHIPPED_POLICY


def _propose(args: argparse.Namespace, settings: Settings) -> int:
    policy, source = _policy(settings)

    async def work(fixes: FixStore, actor: Actor) -> tuple[StoredFix, bool]:
        authorize(actor, "fix.propose")  # before anything is read; the store asks again
        open_fix = await fixes.open_fix(args.finding_id)
        if open_fix is not None:
            return open_fix, False
        stored = await _finding(fixes, args.finding_id)
        from mendline.stages.heal import policy_decision

        decision = await policy_decision(policy, stored.finding, fixes)
        return await fixes.propose(actor, args.finding_id, decision), True

    with hint_on(FindingNotFound, FINDINGS_HINT):
        fix, created = _on_fixes(settings, work)
    if args.json:
        print_json({**fix.as_json(), "created": created, "policy": source})
        return 0
    what = f"fix {fix.id} of finding {fix.finding_id} (issue {fix.issue_id})"
    if not created:
        print(f"finding {fix.finding_id} has an open fix already: {what} is {fix.state}")
    elif fix.state == "rejected":
        print(f"{what} is rejected: the fix policy ({printable(source)}) denies it")
    else:
        print(f"proposed {what}, as the fix policy ({printable(source)}) decided")
    for line in explain(fix.decision):
        print(f"  {line}")
    if fix.state == "proposed" and fix.decision.verdict == "approval":
        print(f"next: an approver runs `mendline fix approve {fix.id}`")
    return 0


def _policy_explain(args: argparse.Namespace, settings: Settings) -> int:
    policy, source = _policy(settings)

    async def work(fixes: FixStore, actor: Actor) -> tuple[StoredFinding, PolicyDecision]:
        authorize(actor, "finding.read")
        stored = await _finding(fixes, args.finding_id)
        if not stored.finding.fix_patch:
            raise FindingNotFound(
                f"finding {stored.id} has no patch: there is nothing to decide on",
                hint=FINDINGS_HINT,
            )
        from mendline.stages.heal import policy_decision

        return stored, await policy_decision(policy, stored.finding, fixes)

    with hint_on(FindingNotFound, FINDINGS_HINT):
        stored, decision = _on_fixes(settings, work)
    if args.json:
        print_json(
            {
                "finding_id": stored.id,
                "issue_id": stored.issue_id,
                "policy": source,
                "decision": decision.model_dump(mode="json"),
            }
        )
        return 0
    print(
        f"finding {stored.id} (issue {stored.issue_id}), by the fix policy"
        f" ({printable(source)}) now; nothing was changed"
    )
    for line in explain(decision):
        print(f"  {line}")
    return 0


def _moving(fix_id: int) -> AbstractContextManager[None]:
    """A move's refusals with a hint: where the fix stands."""
    return hint_on(IllegalTransition, f"`mendline fix show {fix_id}` shows where it stands")


def _approve(args: argparse.Namespace, settings: Settings) -> int:
    with _moving(args.id), hint_on(RejectedData, "another approver must approve it"):
        fix = _on_fixes(settings, lambda fixes, actor: fixes.approve(actor, args.id, args.note))
    have, needed = len(fix.approvals), fix.approvals_needed
    if fix.state == "approved":
        text = f"approved fix {fix.id} (issue {fix.issue_id}): {have} of {needed} approvals"
    else:
        text = (
            f"approved fix {fix.id} (issue {fix.issue_id}): {have} of {needed} approvals;"
            f" it needs {needed - have} more, from someone else"
        )
    print_done(args, text, **fix.as_json())
    return 0


def _reject(args: argparse.Namespace, settings: Settings) -> int:
    with _moving(args.id):
        fix = _on_fixes(settings, lambda fixes, actor: fixes.reject(actor, args.id, args.reason))
    print_done(
        args,
        f"rejected fix {fix.id} (issue {fix.issue_id}): {printable(args.reason)}",
        **fix.as_json(),
    )
    return 0


def _deployed(args: argparse.Namespace, settings: Settings) -> int:
    with _moving(args.id):
        fix = _on_fixes(settings, lambda fixes, actor: fixes.deployed(actor, args.id, args.release))
    print_done(
        args,
        f"fix {fix.id} (issue {fix.issue_id}) is deployed in release {printable(args.release)}",
        **fix.as_json(),
    )
    return 0


def _healer(settings: Settings, fixes: FixStore) -> Healer:
    """A heal worker on the fix store's pool, owning what it claims as this command."""
    from mendline.sinks.postgres import FindingStore
    from mendline.stages.heal import Healer

    policy, _ = _policy(settings)
    owner = f"cli {cli_origin()} {os.getpid()}"
    return Healer(settings, policy, fixes, FindingStore(fixes.pool), owner=owner)


def _apply(args: argparse.Namespace, settings: Settings) -> int:
    async def work(fixes: FixStore, actor: Actor) -> Handover | None:
        authorize(actor, "fix.apply")  # before any git work; the store asks again
        return await _healer(settings, fixes).apply_now(actor, args.id)

    with _moving(args.id), hint_on(ForgeError, _FORGE_HINT):
        handover = _on_fixes(settings, work)
    if handover is None:
        print_error(
            f"fix {args.id} was not applied for now: git or the forge failed (the log says"
            " why); the heal stage tries it again once its lease lapses",
            None,
        )
        return 1
    fix = handover.fix
    if not handover.done:
        print_error(f"fix {fix.id} was taken over by another worker: {handover.reason}", None)
        return 1
    if fix.state != "applied":
        print_done(args, f"fix {fix.id} failed: {printable(fix.error or '')}", **fix.as_json())
        return 1
    assert fix.delivery is not None
    where = fix.delivery.pr_url or fix.delivery.patch_path or fix.delivery.branch
    text = f"applied fix {fix.id} (issue {fix.issue_id}): {fix.delivery.commit[:12]} on {where}"
    print_done(args, printable(text), **fix.as_json())
    return 0


def _rollback(args: argparse.Namespace, settings: Settings) -> int:
    async def work(fixes: FixStore, actor: Actor) -> StoredFix:
        authorize(actor, "fix.rollback")  # before any git work; the store asks again
        return await _healer(settings, fixes).rollback(actor, args.id, args.reason)

    with (
        _moving(args.id),
        hint_on(ForgeError, _FORGE_HINT),
        hint_on(PatchRefused, f"`mendline fix show {args.id}` shows the fix and its commit"),
    ):
        fix = _on_fixes(settings, work)
    delivery = fix.rollback_delivery
    assert delivery is not None
    where = delivery.pr_url or delivery.patch_path or delivery.branch
    text = f"rolled back fix {fix.id} (issue {fix.issue_id}): {delivery.commit[:12]} on {where}"
    print_done(args, printable(text), **fix.as_json())
    return 0


# -- fix policy ------------------------------------------------------------------------------


def _policy_example(args: argparse.Namespace, settings: Settings) -> int:
    sys.stdout.write(shipped_policy_text())
    return 0


def _example_anyway(args: argparse.Namespace, error: ConfigError) -> int:
    sys.stdout.write(shipped_policy_text())
    return 0


def _policy_check(args: argparse.Namespace, settings: Settings) -> int:
    path: Path | None = args.file if args.file is not None else settings.fix_policy_file
    source = str(path) if path is not None else SHIPPED_POLICY
    try:
        policy = load_policy(path)
    except ConfigError as exc:
        return print_problems(args, source, exc, _HINT)
    warnings = policy_warnings(policy, os.environ) + _clone_warnings(policy)
    if args.json:
        print_json(
            {
                "source": source,
                "valid": True,
                "policy": policy.model_dump(mode="json"),
                "warnings": warnings,
            }
        )
        return 0
    repositories = counted(len(policy.repositories), "repository", "repositories")
    remediations = counted(len(policy.remediations), "remediation")
    print(f"{printable(source)}: valid, {repositories}, {remediations}")
    for line in _summary(policy):
        print(f"  {printable(line)}")
    for warning in warnings:
        print(f"warning: {printable(warning)}", file=sys.stderr)
    return 0


def _clone_warnings(policy: FixPolicy) -> list[str]:
    """Repositories whose path is no git clone here (a policy may be checked elsewhere)."""
    warnings = []
    for repo in policy.repositories:
        if not repo.path.is_dir():
            warnings.append(f'repository "{repo.name}": {repo.path} is not a folder here')
        elif not (repo.path / ".git").exists():
            warnings.append(f'repository "{repo.name}": {repo.path} is not a git clone (no .git)')
    return warnings


def _summary(policy: FixPolicy) -> list[str]:
    """The policy as people read it, one line per rule set, repository and remediation."""
    auto, two, deny = policy.auto, policy.approval.two_person, policy.deny
    lines = [
        "auto: "
        + (
            f"severity {either(auto.severities) or 'none'}; kind {either(auto.kinds) or 'none'};"
            f" confidence >= {auto.min_confidence:g}; paths {', '.join(auto.paths) or 'none'};"
            f" at most {auto.max_changed_lines} changed lines and"
            f" {auto.max_per_hour} an hour per repository"
            if auto.enabled
            else "disabled: every fix needs a person"
        ),
        "approval: one approver; two for "
        + (
            "; ".join(
                f"{what} {either(values)}"
                for what, values in (
                    ("severity", two.severities),
                    ("kind", two.kinds),
                    ("category", two.categories),
                )
                if values
            )
            or "none"
        ),
        f"deny: {counted(len(deny.paths), 'path')}, {counted(len(deny.patterns), 'pattern')},"
        f" {counted(len(deny.risks), 'risk')}"
        + (", dependency changes" if deny.dependency_changes else ""),
    ]
    lines += [_repository_line(repo) for repo in policy.repositories] or [_NO_REPOSITORY]
    lines += [_remediation_line(remedy) for remedy in policy.remediations]
    return lines


def _repository_line(repo: Repository) -> str:
    via = f" ({repo.forge} {repo.project})" if repo.forge is not None else ""
    mappings = ", ".join(
        f"{m.stack_root or '(every path)'} -> {m.source_root or '(the root)'}"
        for m in repo.mappings
    )
    return (
        f"repository {repo.name}: {repo.path}, from {repo.base_branch},"
        f" delivery {repo.delivery}{via}; {mappings}"
    )


def _remediation_line(remedy: Remediation) -> str:
    when = remedy.when
    conditions = [f"check {when.check}"] if when.check is not None else []
    conditions += [f"{name}={'|'.join(values)}" for name, values in when.labels.items()]
    conditions += [f"category {when.category}"] if when.category is not None else []
    action = (
        " ".join(remedy.command)
        if remedy.command is not None
        else f"{remedy.http.method} {remedy.http.url}"
        if remedy.http is not None
        else ""
    )
    guard = [
        "approval" if remedy.requires_approval else "no approval",
        f"cooldown {format_duration(remedy.cooldown)}",
        f"{remedy.max_runs_per_hour} an hour",
    ]
    if remedy.dry_run:
        guard.append("dry run")
    return f"remediation {remedy.name}: when {', '.join(conditions)}: {action} ({', '.join(guard)})"
