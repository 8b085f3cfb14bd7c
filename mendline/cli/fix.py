"""The ``mendline fix`` commands: self-healing fixes. ``fix policy check`` and ``fix policy
example`` for the fix policy file; each subgroup of ``fix`` registers in its own function."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mendline.analyzers.policy import (
    SHIPPED_POLICY,
    load_policy,
    policy_warnings,
    shipped_policy_text,
)
from mendline.cli._options import AS_JSON, Commands
from mendline.cli.output import counted, print_json, print_problems, printable
from mendline.schemas.duration import format_duration
from mendline.schemas.errors import ConfigError
from mendline.schemas.fixpolicy import FixPolicy, Remediation, Repository
from mendline.schemas.settings import Settings
from mendline.schemas.tomlfile import either

__all__ = ["register"]

_HINT = (
    "the README's section on the fix policy shows the format;"
    " `mendline fix policy example` prints the shipped default to start from"
)
_NO_REPOSITORY = "no repository: no fix is applied until [[repositories]] names one"


def register(commands: Commands) -> None:
    """Add ``fix`` and its subgroups (``fix policy check``, ``fix policy example``) to the
    top-level ``commands``."""
    fix = commands.add_parser("fix", help="self-healing fixes: the fix policy")
    fix_commands = fix.add_subparsers(dest="fix_command", required=True)
    _register_policy(fix_commands)


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
