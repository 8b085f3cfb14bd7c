"""Fix policy decisions, pure: whether a finding's patch is applied without a person, needs
one or two approvers, or is never applied, with every reason; which repository a patch maps
into; which remediations a subject has and whether one may run now. The policy file is read
by ``load_policy`` (the format is in schemas/fixpolicy.py and the shipped default)."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from mendline.analyzers.patch import FilePatch, parse_patch
from mendline.analyzers.policy._fix_dependencies import dependency_change
from mendline.analyzers.policy._fix_paths import (
    MappedPatch,
    MappedPath,
    PatchRefused,
    first_match,
    map_patch,
    map_path,
    shown_path,
)
from mendline.analyzers.policy._fixes_file import (
    SHIPPED_POLICY,
    load_policy,
    parse_policy,
    policy_warnings,
    shipped_policy_text,
)
from mendline.analyzers.rootcause.risks import fix_risks
from mendline.schemas.duration import format_duration
from mendline.schemas.errors import InvalidPatch
from mendline.schemas.finding import RISK_WORDS, RISKS, Category, Finding, FixKind, Risk, Severity
from mendline.schemas.fix import TRANSITIONS, FixState, PolicyDecision, PolicyVerdict
from mendline.schemas.fixpolicy import (
    AutoRules,
    DenyRules,
    FixPolicy,
    Remediation,
    RemediationDecision,
    TwoPerson,
)
from mendline.schemas.printable import printable
from mendline.schemas.remediation import RemediationRun

__all__ = [
    "SHIPPED_POLICY",
    "FixCandidate",
    "FixMove",
    "MappedPatch",
    "MappedPath",
    "PatchRefused",
    "RemediationStep",
    "RemediationSubject",
    "decide",
    "explain",
    "fix_moves",
    "load_policy",
    "map_patch",
    "map_path",
    "parse_policy",
    "policy_warnings",
    "remediation_decision",
    "remediation_step",
    "remediations_for",
    "shipped_policy_text",
]

_HOUR = timedelta(hours=1)
_SPACE = re.compile(r"\s+")
# git's modes of a symbolic link and of a submodule (a gitlink): never made by a fix.
_LINK_MODES = ("120000", "160000")
_VERDICTS = {
    "auto": "auto: applied without a person",
    "deny": "deny: never applied",
}


@dataclass(frozen=True)
class FixCandidate:
    """What the policy judges of a finding's fix: its severity, kind, confidence, risks and
    category, and its patch (frame paths, as the analyser wrote it)."""

    severity: Severity
    fix_kind: FixKind | None
    confidence: float
    patch: str
    risks: tuple[Risk, ...] = ()
    category: Category | None = None

    @classmethod
    def of(cls, finding: Finding) -> FixCandidate:
        """The candidate of ``finding`` (one without a patch is denied: it has none to read)."""
        return cls(
            severity=finding.severity,
            fix_kind=finding.fix_kind,
            confidence=finding.confidence,
            patch=finding.fix_patch or "",
            risks=tuple(finding.risks),
            category=finding.category,
        )


def decide(
    policy: FixPolicy, candidate: FixCandidate, auto_fixes_last_hour: Mapping[str, int]
) -> PolicyDecision:
    """The policy's verdict on a fix, with every reason.

    The deny rules first: a patch that cannot be read or mapped into one repository, a path
    matching a deny glob, an added line matching a deny pattern (or a hunk's added lines,
    joined, matching one: a call split over lines), a symbolic link or submodule made (git's
    mode 120000 or 160000), a dependency change, a risk (the finding's, and those
    ``fix_risks`` finds in the patch): each that matches is a reason, and any makes it
    ``deny``. Then ``[auto]``: when every condition holds (and no file's mode changes) it is
    ``auto`` (the reasons are the conditions that held); each that does not is a reason it
    needs a person, and it is ``approval`` by one person, or two when ``[approval.two_person]``
    says so. ``auto_fixes_last_hour`` counts the automatic fixes of the last hour by
    repository name (a name missing is 0). Paths are the repository's once the patch maps.
    """
    try:
        files = parse_patch(candidate.patch)
    except InvalidPatch as exc:
        return PolicyDecision(verdict="deny", reasons=[f"the patch cannot be read: {exc}"])
    mapped = map_patch(files, policy.repositories)
    if isinstance(mapped, PatchRefused):
        denied = [*mapped.reasons, *_denials(policy.deny, candidate, files)]
        return PolicyDecision(verdict="deny", reasons=denied)
    repository, text = mapped.repository.name, mapped.text
    denied = _denials(policy.deny, candidate, mapped.files)
    if denied:
        return PolicyDecision(
            verdict="deny", reasons=denied, repository=repository, mapped_patch=text
        )
    recent = auto_fixes_last_hour.get(mapped.repository.name, 0)
    held, failed = _auto(policy.auto, candidate, mapped, recent)
    if not failed:
        return PolicyDecision(
            verdict="auto",
            reasons=[*mapped.reasons, *held],
            repository=repository,
            mapped_patch=text,
        )
    approvers, why = _approvers(policy.approval.two_person, candidate)
    return PolicyDecision(
        verdict="approval",
        reasons=[*failed, *why],
        approvals_needed=approvers,
        repository=repository,
        mapped_patch=text,
    )


def explain(decision: PolicyDecision) -> list[str]:
    """The decision for people, one line each: the verdict, the repository, every reason
    (escaped: paths in them come from the patch)."""
    if decision.verdict == "approval":
        who = "two people" if decision.approvals_needed == 2 else "one person"
        head = f"approval: applied once {who} approve{'s' if who == 'one person' else ''}"
    else:
        head = _VERDICTS[decision.verdict]
    lines = [f"verdict: {head}"]
    if decision.repository is not None:
        lines.append(f"repository: {printable(decision.repository)}")
    lines += [f"- {printable(reason)}" for reason in decision.reasons]
    return lines


#: What a person may ask of a fix (on its page, through the API, from the CLI).
FixMove = Literal["approve", "reject", "apply", "rollback"]


def fix_moves(
    state: FixState,
    verdict: PolicyVerdict,
    approvals: Collection[str],
    approvals_needed: int,
    person: str,
) -> tuple[FixMove, ...]:
    """The moves ``person`` may ask of a fix now, by where it stands (their role is the
    caller's to check): ``approve`` a proposed fix that needs approval and that they have
    not approved yet; ``reject`` a proposed or approved one; ``apply`` an approved one, a
    proposed one the policy lets go without a person, or a proposed one their approval
    would make approved (applying approves it first); ``rollback`` one that was applied
    (deployed, verified or regressed since). The fix store checks each move again."""
    moves: list[FixMove] = []
    approvable = state == "proposed" and verdict == "approval" and person not in approvals
    if approvable:
        moves.append("approve")
    if "rejected" in TRANSITIONS[state]:
        moves.append("reject")
    last_approval = approvable and len(approvals) + 1 >= approvals_needed
    if state == "approved" or (state == "proposed" and verdict == "auto") or last_approval:
        moves.append("apply")
    if "rolled_back" in TRANSITIONS[state]:
        moves.append("rollback")
    return tuple(moves)


# -- the rules ------------------------------------------------------------------------------


def _paths(files: Sequence[FilePatch]) -> list[str]:
    """Every path the files touch (old and new), each once."""
    return list(
        dict.fromkeys(p for file in files for p in (file.old_path, file.new_path) if p is not None)
    )


def _denials(deny: DenyRules, candidate: FixCandidate, files: Sequence[FilePatch]) -> list[str]:
    reasons = [
        f"{shown_path(path)} matches the deny path {_literal(glob)}"
        for path in _paths(files)
        if (glob := first_match(deny.paths, path)) is not None
    ]
    for file in files:
        for pattern in deny.patterns:
            compiled = re.compile(pattern)
            line = _first_added(file, compiled)
            if line is not None:
                reasons.append(
                    f"{shown_path(file.path)}:{line} adds a line matching the deny pattern"
                    f" {_literal(pattern)}"
                )
            elif (hunk := _first_joined(file, compiled)) is not None:
                reasons.append(
                    f"{shown_path(file.path)}: hunk {hunk} adds lines that, joined, match the"
                    f" deny pattern {_literal(pattern)}"
                )
    for file in files:
        for header in file.git_header:
            if header.startswith(("new file mode ", "new mode ")) and header.endswith(_LINK_MODES):
                reasons.append(
                    f"{shown_path(file.path)}: {header}: it makes a symbolic link or a submodule"
                )
    if deny.dependency_changes:
        for file in files:
            if (line := dependency_change(file)) is not None:
                reasons.append(
                    f"{shown_path(file.path)}:{line} changes the project's dependencies"
                    " ([deny] dependency_changes)"
                )
    found = set(candidate.risks) | set(fix_risks("", candidate.patch))
    reasons += [
        f"risk {risk}: {RISK_WORDS[risk]}" for risk in RISKS if risk in found and risk in deny.risks
    ]
    return reasons


def _literal(text: str) -> str:
    """``text`` as the policy file has it, in TOML's literal quotes (no escapes)."""
    return f"'''{text}'''" if "'" in text else f"'{text}'"


def _first_added(file: FilePatch, pattern: re.Pattern[str]) -> int | None:
    """The line (in the new file) of the first added line ``pattern`` finds."""
    for hunk in file.hunks:
        number = hunk.new_start
        for line in hunk.lines:
            if line[0] == "+" and pattern.search(line[1:]):
                return number
            number += line[0] != "-"
    return None


def _first_joined(file: FilePatch, pattern: re.Pattern[str]) -> int | None:
    """The number (from 1) of the first hunk whose added lines, joined with the whitespace
    between and in them collapsed to one space or removed, ``pattern`` finds: a call split
    over lines (``os.`` then ``system(...)``) is still one call."""
    for n, hunk in enumerate(file.hunks, 1):
        joined = " ".join(hunk.added)
        if pattern.search(_SPACE.sub(" ", joined)) or pattern.search(_SPACE.sub("", joined)):
            return n
    return None


def _mode_changes(files: Sequence[FilePatch]) -> list[str]:
    """The files whose git header changes their mode (``old mode``/``new mode``, a new
    file's mode other than 100644), shown."""
    return [
        shown_path(file.path)
        for file in files
        if any(
            line.startswith(("old mode ", "new mode "))
            or (line.startswith("new file mode ") and line != "new file mode 100644")
            for line in file.git_header
        )
    ]


def _auto(
    rules: AutoRules, candidate: FixCandidate, mapped: MappedPatch, recent: int
) -> tuple[list[str], list[str]]:
    """The ``[auto]`` conditions that held, and those that did not, each in words."""
    kinds = ", ".join(rules.kinds) or "none"
    severities = ", ".join(rules.severities) or "none"
    kind = candidate.fix_kind
    paths = _paths(mapped.files)
    outside = [path for path in paths if first_match(rules.paths, path) is None]
    reshaped = [shown_path(file.path) for file in mapped.files if file.old_path != file.new_path]
    changed = sum(file.changed_lines for file in mapped.files)
    modes = _mode_changes(mapped.files)
    repo = mapped.repository.name
    conditions: list[tuple[bool, str, str]] = [  # (holds, said if it does, said if not)
        (rules.enabled, "[auto] is enabled", "[auto] enabled = false: every fix needs a person"),
        (
            candidate.severity in rules.severities,
            f"severity {candidate.severity} is one of [auto] severities ({severities})",
            f"severity {candidate.severity} is not one of [auto] severities ({severities})",
        ),
        (
            kind is not None and kind in rules.kinds,
            f"fix kind {kind} is one of [auto] kinds ({kinds})",
            f"fix kind {kind} is not one of [auto] kinds ({kinds})"
            if kind is not None
            else "the finding does not say what kind of fix it is (fix_kind)",
        ),
        (
            candidate.confidence >= rules.min_confidence,
            f"confidence {candidate.confidence:g} is at least [auto] min_confidence"
            f" {rules.min_confidence:g}",
            f"confidence {candidate.confidence:g} is below [auto] min_confidence"
            f" {rules.min_confidence:g}",
        ),
        (
            not outside,
            f"every path matches [auto] paths ({', '.join(rules.paths)})",
            f"{', '.join(shown_path(p) for p in outside)} match"
            f"{'es' if len(outside) == 1 else ''} none of [auto] paths"
            f" ({', '.join(rules.paths) or 'none'})",
        ),
        (
            not reshaped,
            "it changes existing files only",
            f"it creates, deletes or renames files ({', '.join(reshaped)}): only changes to"
            " existing files are applied without a person",
        ),
        (
            changed <= rules.max_changed_lines,
            f"{changed} changed lines, at most [auto] max_changed_lines {rules.max_changed_lines}",
            f"{changed} changed lines, more than [auto] max_changed_lines"
            f" {rules.max_changed_lines}",
        ),
        (
            recent < rules.max_per_hour,
            f"{recent} automatic fixes in repository {repo} in the last hour, fewer than"
            f" [auto] max_per_hour {rules.max_per_hour}",
            f"{recent} automatic fixes in repository {repo} in the last hour already:"
            f" [auto] max_per_hour is {rules.max_per_hour}",
        ),
    ]
    held = [said for holds, said, _ in conditions if holds]
    failed = [said for holds, _, said in conditions if not holds]
    if modes:  # said only when it fails: a mode change is rare, its absence no news
        failed.append(
            f"it changes the mode of {', '.join(modes)} (git's mode lines): a mode change"
            " is applied only once a person approves"
        )
    return held, failed


def _approvers(two_person: TwoPerson, candidate: FixCandidate) -> tuple[int, list[str]]:
    why = [
        f"two people must approve: {what} {value} is in [approval.two_person] {key}"
        for what, key, value, listed in (
            ("severity", "severities", candidate.severity, two_person.severities),
            ("fix kind", "kinds", candidate.fix_kind, two_person.kinds),
            ("category", "categories", candidate.category, two_person.categories),
        )
        if value is not None and value in listed
    ]
    return (2, why) if why else (1, [])


# -- remediations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RemediationSubject:
    """What a remediation may be for: a health check that went down (``check``, its name),
    or an issue (its alert ``labels``, as ``alert_labels`` makes them, and ``category``)."""

    check: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    category: str | None = None


def remediations_for(policy: FixPolicy, subject: RemediationSubject) -> list[Remediation]:
    """The remediations whose every ``when`` condition holds for ``subject``, in file order."""
    found = []
    for remediation in policy.remediations:
        when = remediation.when
        if when.check is not None and when.check != subject.check:
            continue
        if when.category is not None and when.category != subject.category:
            continue
        if all(subject.labels.get(name) in values for name, values in when.labels.items()):
            found.append(remediation)
    return found


def remediation_decision(
    remediation: Remediation,
    recent_runs: Sequence[datetime],
    running_now: Collection[str],
    now: datetime,
) -> RemediationDecision:
    """Whether ``remediation`` may run at ``now``, with every reason.

    ``recent_runs`` are when its runs started (at least those of the last hour and of its
    cooldown); ``running_now`` the targets (``Remediation.run_target``) with a run in
    progress. Refused while its target has a run in progress, within its cooldown, or at
    ``max_runs_per_hour`` runs in the last hour (each a reason). Else a dry run is ``run``
    with ``dry_run`` set (nothing is run, so no person is needed), and otherwise it
    ``needs_approval`` when ``requires_approval`` says so, or is ``run``."""
    target = remediation.run_target
    limit = remediation.max_runs_per_hour
    cooldown = timedelta(seconds=remediation.cooldown)
    in_hour = sum(1 for started in recent_runs if now - started < _HOUR)
    last = max(recent_runs, default=None)
    ago = max(now - last, timedelta(0)) if last is not None else None
    refused: list[str] = []
    if target in running_now:
        refused.append(f"a run on {printable(target)} is in progress: one at a time")
    if limit == 0:
        refused.append("max_runs_per_hour = 0: it never runs")
    elif in_hour >= limit:
        refused.append(f"{in_hour} runs in the last hour: max_runs_per_hour is {limit}")
    if last is not None and ago is not None and now - last < cooldown:
        refused.append(
            f"it ran {format_duration(ago.total_seconds())} ago, within its cooldown of"
            f" {format_duration(remediation.cooldown)}: not before {(last + cooldown).isoformat()}"
        )
    if refused:
        return RemediationDecision(verdict="refused", reasons=refused, dry_run=remediation.dry_run)
    held = [
        f"no run on {printable(target)} in progress",
        f"{in_hour} of {limit} runs in the last hour",
        "it has not run before"
        if ago is None
        else f"it ran {format_duration(ago.total_seconds())} ago, past its cooldown of"
        f" {format_duration(remediation.cooldown)}",
    ]
    if remediation.dry_run:
        said = "dry_run = true: what would run is recorded, nothing is run"
        return RemediationDecision(verdict="run", reasons=[*held, said], dry_run=True)
    if remediation.requires_approval:
        said = "requires_approval = true: an approver must approve the run"
        return RemediationDecision(verdict="needs_approval", reasons=[*held, said])
    said = "requires_approval = false: it runs without a person"
    return RemediationDecision(verdict="run", reasons=[*held, said])


#: What a worker records of a decision for a subject in trouble: ``start`` a run (approved
#: by policy), ``request`` one from a person, ``refuse`` one (a guardrail held it back), or
#: nothing (``none``): that was done already for this down period.
RemediationStep = Literal["start", "request", "refuse", "none"]

_OPEN: frozenset[str] = frozenset({"requested", "approved", "running"})


def remediation_step(
    decision: RemediationDecision, episode: Sequence[RemediationRun]
) -> tuple[RemediationStep, str]:
    """What to record of ``decision`` for one down period of its subject, and why.

    ``episode`` are the runs of the remediation for the subject in this down period (since
    the check went down, since the issue opened or regressed), newest first. Nothing while
    one of them is open (requested, approved or running: it is being seen to). A refusal is
    recorded once a down period, and not at all right after a run that helped (the check is
    up, and the monitor has not seen it yet); a person is asked once a down period, whatever
    they answered; a run policy lets go starts each time its guardrails let it (a check still
    down after its cooldown is worth another run, up to ``max_runs_per_hour``)."""
    opened = next((run for run in episode if run.state in _OPEN), None)
    if opened is not None:
        return "none", f"run {opened.id} of this down period is {opened.state}"
    if decision.verdict == "refused":
        refused = next((run for run in episode if run.verdict == "refused"), None)
        if refused is not None:
            return "none", f"refused once in this down period already (run {refused.id})"
        last = episode[0] if episode else None
        if last is not None and last.verified:
            return "none", f"run {last.id} helped: the check passed after it"
        return "refuse", "; ".join(decision.reasons)
    if decision.verdict == "needs_approval":
        asked = next((run for run in episode if run.verdict == "needs_approval"), None)
        if asked is not None:
            return "none", f"a person was asked once in this down period (run {asked.id})"
        return "request", "; ".join(decision.reasons)
    return "start", "; ".join(decision.reasons)
