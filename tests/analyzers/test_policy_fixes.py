"""The fix policy's decisions: a refusal for each deny rule, each [auto] condition that sends
a fix to a person, the shipped default on a style, a logic and a critical fix, code mappings
(longest prefix, unmappable, outside the repository, two repositories), two-person approval,
and the remediations' guardrails."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mendline.analyzers.policy import (
    FixCandidate,
    MappedPatch,
    PatchRefused,
    RemediationSubject,
    decide,
    explain,
    map_patch,
    remediation_decision,
    remediation_step,
    remediations_for,
)
from mendline.analyzers.rootcause.heuristic import HeuristicAnalyser
from mendline.schemas.finding import IssueContext, IssueSummary
from mendline.schemas.fixpolicy import (
    AutoRules,
    CodeMapping,
    DenyRules,
    FixPolicy,
    Remediation,
    RemediationDecision,
    RemediationWhen,
    Repository,
)
from mendline.schemas.remediation import RemediationRun

from .event_helpers import event_of

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def diff(path: str, old: str, new: str, line: int = 10) -> str:
    """A one-line change of ``path``, as the heuristic analyser writes them."""
    return f"--- a/{path}\n+++ b/{path}\n@@ -{line},1 +{line},1 @@\n-{old}\n+{new}\n"


def repo(name: str, *mappings: tuple[str, str]) -> Repository:
    return Repository(
        name=name,
        path=f"/srv/{name}",
        mappings=[CodeMapping(stack_root=s, source_root=t) for s, t in mappings],
    )


SHOP = repo("shop", ("app/", "src/app/"), ("", ""))
POLICY = FixPolicy(repositories=[SHOP])
STYLE_PATCH = diff("app/orders.py", "import os,sys", "import os, sys")
STYLE = FixCandidate(severity="low", fix_kind="style", confidence=0.9, patch=STYLE_PATCH)


def candidate(**changes: Any) -> FixCandidate:
    """The style fix with ``changes``."""
    return replace(STYLE, **changes)


# -- the shipped default ----------------------------------------------------------------------


def test_a_style_fix_goes_alone_with_every_condition_as_its_reason() -> None:
    decision = decide(POLICY, STYLE, {})
    assert decision.verdict == "auto" and decision.approvals_needed == 0
    assert decision.repository == "shop"
    assert decision.mapped_patch == (
        "--- a/src/app/orders.py\n+++ b/src/app/orders.py\n@@ -10,1 +10,1 @@\n"
        "-import os,sys\n+import os, sys\n"
    )
    assert decision.reasons == [
        "app/orders.py is src/app/orders.py in repository shop"
        " (stack_root 'app/' -> source_root 'src/app/')",
        "[auto] is enabled",
        "severity low is one of [auto] severities (low, medium)",
        "fix kind style is one of [auto] kinds (style, formatting, import)",
        "confidence 0.9 is at least [auto] min_confidence 0.8",
        "every path matches [auto] paths (**/*.py)",
        "it changes existing files only",
        "2 changed lines, at most [auto] max_changed_lines 20",
        "0 automatic fixes in repository shop in the last hour, fewer than [auto] max_per_hour 3",
    ]


def test_a_logic_fix_needs_one_approver_and_says_why() -> None:
    logic = candidate(severity="high", fix_kind="logic", confidence=0.7)
    decision = decide(POLICY, logic, {})
    assert (decision.verdict, decision.approvals_needed) == ("approval", 1)
    assert decision.reasons == [
        "severity high is not one of [auto] severities (low, medium)",
        "fix kind logic is not one of [auto] kinds (style, formatting, import)",
        "confidence 0.7 is below [auto] min_confidence 0.8",
    ]
    assert decision.repository == "shop" and decision.mapped_patch is not None


def test_a_critical_fix_needs_two_approvers() -> None:
    decision = decide(POLICY, candidate(severity="critical", fix_kind="guard"), {})
    assert (decision.verdict, decision.approvals_needed) == ("approval", 2)
    assert decision.reasons[-1] == (
        "two people must approve: severity critical is in [approval.two_person] severities"
    )


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"fix_kind": "config"}, "fix kind config is in [approval.two_person] kinds"),
        ({"fix_kind": "dependency"}, "fix kind dependency is in [approval.two_person] kinds"),
        (
            {"category": "concurrency"},
            "category concurrency is in [approval.two_person] categories",
        ),
    ],
)
def test_two_person_by_kind_and_category(changes: dict[str, object], reason: str) -> None:
    policy = POLICY.model_copy(
        update={
            "approval": POLICY.approval.model_copy(
                update={
                    "two_person": POLICY.approval.two_person.model_copy(
                        update={"categories": ["concurrency"]}
                    )
                }
            ),
            "auto": AutoRules(enabled=False),
        }
    )
    decision = decide(policy, candidate(**changes), {})
    assert (decision.verdict, decision.approvals_needed) == ("approval", 2)
    assert decision.reasons[-1] == f"two people must approve: {reason}"


def test_the_shipped_default_applies_nothing() -> None:
    decision = decide(FixPolicy(), STYLE, {})
    assert decision.verdict == "deny"
    assert decision.reasons == [
        "no repository is configured ([[repositories]] in the fix policy file):"
        " no fix can be applied"
    ]


def test_without_a_repository_the_deny_rules_still_judge_the_patch_as_given() -> None:
    patch = diff(".github/workflows/ci.yml", "run: make", "run: make deploy")
    assert decide(FixPolicy(), candidate(patch=patch), {}).reasons == [
        "no repository is configured ([[repositories]] in the fix policy file):"
        " no fix can be applied",
        ".github/workflows/ci.yml matches the deny path '.github/workflows/**'",
    ]


def test_a_malicious_patch_is_denied_for_every_rule_it_breaks() -> None:
    patch = diff(".github/workflows/ci.yml", "run: make test", "run: make test && deploy") + diff(
        "app/orders.py", "total = sum(items)", "total = sum(items); os.system('id')", 40
    )
    decision = decide(POLICY, candidate(patch=patch), {})
    assert decision.verdict == "deny" and decision.approvals_needed == 0
    assert decision.reasons == [
        ".github/workflows/ci.yml matches the deny path '.github/workflows/**'",
        "src/app/orders.py:40 adds a line matching the deny pattern"
        " '\\bos\\.(?:system|popen)\\s*\\('",
        "risk shell_command: runs a shell command",
    ]
    assert explain(decision)[:2] == ["verdict: deny: never applied", "repository: shop"]


# -- each deny rule ---------------------------------------------------------------------------


DENIED = [
    # (frame path, old line, new line, the reason)
    (".github/workflows/ci.yml", "a", "b", "matches the deny path '.github/workflows/**'"),
    (".GitHub/Workflows/CI.yml", "a", "b", "matches the deny path '.github/workflows/**'"),
    (".gitlab-ci.yml", "a", "b", "matches the deny path '.gitlab-ci.yml'"),
    ("app/migrations/0002_x.py", "a", "b", "matches the deny path '**/migrations/**'"),
    (".env.production", "A=1", "A=2", "matches the deny path '**/.env*'"),
    ("app/aws_secrets.py", "a", "b", "matches the deny path '**/*secret*'"),
    ("deploy/server.key", "a", "b", "matches the deny path '**/*.key'"),
    ("poetry.lock", "a", "b", "matches the deny path '**/*.lock'"),
    ("uv.lock", "a", "b", "matches the deny path '**/*.lock'"),
    ("Pipfile.lock", "a", "b", "matches the deny path '**/*.lock'"),
    ("requirements-dev.txt", "a", "b", "matches the deny path '**/requirements*.txt'"),
    ("web/package-lock.json", "a", "b", "matches the deny path '**/package-lock.json'"),
    ("setup.py", "a", "b", "matches the deny path '**/setup.py'"),
    ("app/x.py", "y = 1", "y = eval(s)", "adds a line matching the deny pattern"),
    ("app/x.py", "run(c)", "run(c, shell=True)", "adds a line matching the deny pattern"),
    ("app/x.py", "pass", "os.popen(c)", "adds a line matching the deny pattern"),
    ("app/x.py", "H = 'a'", "H = 'https://evil.example'", "adds a line matching the deny pattern"),
    ("app/x.py", "H = 'a'", "H = '10.0.0.7'", "adds a line matching the deny pattern"),
    ("app/x.py", "H = 'a'", "H = 'fe80::1'", "adds a line matching the deny pattern"),
    ("app/x.py", "H = 'a'", 'H = "::1"', "adds a line matching the deny pattern"),
    ("app/x.py", "H = 'a'", "H = '2001:db8:0:0:0:0:0:1'", "adds a line matching the deny pattern"),
]


@pytest.mark.parametrize(
    "line",
    [
        "evens = items[::2]",
        'key.split("::")',
        'at = "12:30:45"',
        "ast.literal_eval(text)",
        "model.eval()",
        "run(argv, shell=False)",
        "version = (1, 2, 3)",
    ],
)
def test_lines_like_the_deny_patterns_that_are_not(line: str) -> None:
    assert decide(POLICY, candidate(patch=diff("app/x.py", "pass", line)), {}).verdict == "auto"


@pytest.mark.parametrize(("path", "old", "new", "reason"), DENIED)
def test_each_deny_rule_refuses(path: str, old: str, new: str, reason: str) -> None:
    decision = decide(POLICY, candidate(patch=diff(path, old, new)), {})
    assert decision.verdict == "deny"
    assert reason in decision.reasons[0], decision.reasons


def test_a_risk_of_the_finding_denies_even_when_the_patch_shows_none() -> None:
    decision = decide(POLICY, candidate(risks=("severity_capped",)), {})
    assert decision.verdict == "deny"
    assert decision.reasons == [
        "risk severity_capped: asked for a severity above the issue's level: not trusted, capped"
    ]
    allowed = POLICY.model_copy(update={"deny": DenyRules(risks=["shell_command"])})
    assert decide(allowed, candidate(risks=("severity_capped",)), {}).verdict == "auto"


def test_a_risk_found_in_the_patch_denies_when_the_finding_says_none() -> None:
    patch = diff("app/x.py", "data = f.read()", "data = pickle.loads(f.read())")
    decision = decide(POLICY, candidate(patch=patch), {})
    assert decision.verdict == "deny"
    assert decision.reasons == [
        "risk unsafe_deserialization: deserialises input unsafely (pickle, torch.load, yaml.load)"
    ]


PYPROJECT = "--- a/pyproject.toml\n+++ b/pyproject.toml\n"


@pytest.mark.parametrize(
    ("hunk", "denied"),
    [
        # an item added to [project] dependencies, the key in the context
        ('@@ -5,2 +5,3 @@\n dependencies = [\n+    "evil>=1",\n ]\n', True),
        # a table of dependencies in the context
        (
            '@@ -9,2 +9,3 @@\n [tool.poetry.dependencies]\n python = "^3.11"\n+evil = "^1"\n',
            True,
        ),
        # nothing in the hunk tells: the line looks like a requirement
        ('@@ -7,2 +7,2 @@\n     "a>=1",\n-    "b>=1",\n+    "b>=2",\n', True),
        # a tool's setting, its table in the context
        ("@@ -20,2 +20,2 @@\n [tool.ruff]\n-line-length = 88\n+line-length = 100\n", False),
        # a setting with no table in the context, and no version in it
        ("@@ -20,1 +20,1 @@\n-line-length = 88\n+line-length = 100\n", False),
    ],
)
def test_dependency_changes_in_pyproject(hunk: str, denied: bool) -> None:
    decision = decide(POLICY, candidate(patch=PYPROJECT + hunk), {})
    said = [r for r in decision.reasons if "changes the project's dependencies" in r]
    assert bool(said) is denied, decision.reasons
    if not denied:  # a person still looks: a .toml is outside [auto] paths
        assert decision.verdict == "approval"


def test_an_unreadable_patch_is_denied_with_the_line() -> None:
    decision = decide(POLICY, candidate(patch="--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,2 @@\n-a\n"), {})
    assert decision.verdict == "deny"
    assert decision.reasons[0].startswith("the patch cannot be read: line ")
    assert decide(POLICY, candidate(patch=""), {}).reasons == [
        "the patch cannot be read: no file in the patch (expected ---/+++ headers and @@ hunks)"
    ]


# -- each [auto] condition --------------------------------------------------------------------


AUTO_FAILURES = [
    ({"severity": "high"}, {}, "severity high is not one of [auto] severities (low, medium)"),
    ({"fix_kind": "guard"}, {}, "fix kind guard is not one of [auto] kinds"),
    ({"fix_kind": None}, {}, "the finding does not say what kind of fix it is (fix_kind)"),
    ({"confidence": 0.79}, {}, "confidence 0.79 is below [auto] min_confidence 0.8"),
    (
        {"patch": diff("docs/guide.md", "a", "b")},
        {},
        "docs/guide.md matches none of [auto] paths (**/*.py)",
    ),
    (
        {"patch": "--- /dev/null\n+++ b/app/new.py\n@@ -0,0 +1,1 @@\n+import os\n"},
        {},
        "it creates, deletes or renames files (src/app/new.py)",
    ),
    (
        {
            "patch": "--- a/app/x.py\n+++ b/app/x.py\n@@ -1,11 +1,11 @@\n"
            + "".join(f"-a{i}\n" for i in range(11))
            + "".join(f"+b{i}\n" for i in range(11))
        },
        {},
        "22 changed lines, more than [auto] max_changed_lines 20",
    ),
    ({}, {"shop": 3}, "3 automatic fixes in repository shop in the last hour already"),
]


@pytest.mark.parametrize(("changes", "recent", "reason"), AUTO_FAILURES)
def test_each_auto_condition_that_fails_sends_it_to_a_person(
    changes: dict[str, object], recent: dict[str, int], reason: str
) -> None:
    decision = decide(POLICY, candidate(**changes), recent)
    assert (decision.verdict, decision.approvals_needed) == ("approval", 1)
    assert len(decision.reasons) == 1 and decision.reasons[0].startswith(reason), decision.reasons


def test_auto_disabled_and_the_count_of_another_repository() -> None:
    assert decide(POLICY, STYLE, {"billing": 10}).verdict == "auto"
    off = POLICY.model_copy(update={"auto": AutoRules(enabled=False)})
    decision = decide(off, STYLE, {})
    assert decision.verdict == "approval"
    assert decision.reasons == ["[auto] enabled = false: every fix needs a person"]


# -- code mappings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mappings", "frame", "mapped"),
    [
        ((("app/", "src/app/"),), "app/orders.py", "src/app/orders.py"),
        (
            (("app/", "src/app/"), ("app/api/", "services/api/")),
            "app/api/v1.py",
            "services/api/v1.py",
        ),
        (
            (("app/api/", "services/api/"), ("app/", "src/app/")),
            "app/orders.py",
            "src/app/orders.py",
        ),
        ((("app.", "src/app/"),), "app/orders.py", "src/app/orders.py"),
        ((("app.api.", "api/"), ("app.", "src/")), "app/api/v1.py", "api/v1.py"),
        ((("/usr/src/app/", ""),), "/usr/src/app/app/orders.py", "app/orders.py"),
        ((("", "backend/"),), "./app/orders.py", "backend/app/orders.py"),
    ],
)
def test_the_longest_stack_root_maps(
    mappings: tuple[tuple[str, str], ...], frame: str, mapped: str
) -> None:
    result = map_patch(diff(frame, "a", "b"), [repo("shop", *mappings)])
    assert isinstance(result, MappedPatch), result
    assert [file.path for file in result.files] == [mapped]
    assert f"+++ b/{mapped}\n" in result.text


def test_the_longest_stack_root_wins_across_repositories() -> None:
    shop, api = repo("shop", ("", "")), repo("api", ("app/api/", "src/"))
    result = map_patch(diff("app/api/v1.py", "a", "b"), [shop, api])
    assert isinstance(result, MappedPatch)
    assert result.repository.name == "api" and result.files[0].path == "src/v1.py"


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        (
            diff("lib/util.py", "a", "b"),
            "lib/util.py is under no repository's stack_root ('app/', 'billing/')",
        ),
        (
            diff("app/../../etc/passwd", "a", "b"),
            "app/../../etc/passwd would be src/app/../../etc/passwd in repository shop:"
            " outside it (an absolute path, or one through ..)",
        ),
        (
            diff("app/x.py", "a", "b") + diff("billing/y.py", "a", "b"),
            "the patch spans repositories (shop: app/x.py; billing: billing/y.py):"
            " a fix changes one repository",
        ),
        (
            diff("lib/x\x1b[2J.py", "a", "b"),  # escaped: an LLM wrote the path
            "lib/x\\x1b[2J.py is under no repository's stack_root",
        ),
    ],
)
def test_a_patch_that_does_not_map_is_refused(patch: str, reason: str) -> None:
    repositories = [repo("shop", ("app/", "src/app/")), repo("billing", ("billing/", ""))]
    result = map_patch(patch, repositories)
    assert isinstance(result, PatchRefused)
    assert result.reasons[0].startswith(reason), result.reasons
    decision = decide(FixPolicy(repositories=repositories), candidate(patch=patch), {})
    assert decision.verdict == "deny" and decision.reasons[0] == result.reasons[0]
    assert decision.repository is None and decision.mapped_patch is None


def test_a_rename_maps_both_paths() -> None:
    patch = (
        "diff --git a/app/old.py b/app/new.py\nsimilarity index 90%\n"
        "rename from app/old.py\nrename to app/new.py\n"
        "--- a/app/old.py\n+++ b/app/new.py\n@@ -1,1 +1,1 @@\n-a\n+b\n"
    )
    result = map_patch(patch, [SHOP])
    assert isinstance(result, MappedPatch)
    assert (result.files[0].old_path, result.files[0].new_path) == (
        "src/app/old.py",
        "src/app/new.py",
    )


# -- the heuristic's own patches --------------------------------------------------------------


def test_the_heuristic_analysers_patch_maps_through_a_module_prefix() -> None:
    frame = {
        "filename": "/srv/releases/42/app/orders.py",
        "module": "app.orders",
        "function": "Order.owner",
        "lineno": 17,
        "context_line": 'return self.data["owner"]',
        "in_app": True,
    }
    event = event_of(None) | {
        "exceptions": [{"type": "KeyError", "value": "'owner'", "frames": [frame]}]
    }
    issue = IssueSummary(id=1, service="shop", title="KeyError: 'owner'", level="error")
    finding = HeuristicAnalyser().diagnose(IssueContext(issue=issue, events=[event]))
    assert finding.fix_patch is not None and finding.fix_patch.startswith("--- a/app/orders.py")
    policy = FixPolicy(repositories=[repo("shop", ("app.", "src/app/"))])
    decision = decide(policy, FixCandidate.of(finding), {})
    assert decision.verdict == "approval"  # a guard is a change of behaviour: a person looks
    assert decision.reasons == [
        "fix kind guard is not one of [auto] kinds (style, formatting, import)"
    ]
    assert decision.mapped_patch == (
        "--- a/src/app/orders.py\n+++ b/src/app/orders.py\n@@ -17,1 +17,1 @@\n"
        '-        return self.data["owner"]\n+        return self.data.get("owner")\n'
    )


# -- explain ----------------------------------------------------------------------------------


def test_explain_gives_the_verdict_the_repository_and_each_reason_escaped() -> None:
    decision = decide(POLICY, candidate(severity="critical", fix_kind="logic"), {})
    assert explain(decision) == [
        "verdict: approval: applied once two people approve",
        "repository: shop",
        "- severity critical is not one of [auto] severities (low, medium)",
        "- fix kind logic is not one of [auto] kinds (style, formatting, import)",
        "- two people must approve: severity critical is in [approval.two_person] severities",
    ]
    one = decide(POLICY, candidate(severity="high"), {})
    assert explain(one)[0] == "verdict: approval: applied once one person approves"
    assert explain(decide(POLICY, STYLE, {}))[0] == "verdict: auto: applied without a person"


# -- remediations -----------------------------------------------------------------------------


def remedy(name: str = "restart", **fields: object) -> Remediation:
    base: dict[str, object] = {
        "name": name,
        "when": RemediationWhen(check="worker"),
        "command": ["systemctl", "restart", "worker"],
    }
    return Remediation.model_validate({**base, **fields})


def test_remediations_for_a_check_labels_and_a_category() -> None:
    by_check = remedy("by-check")
    by_labels = remedy(
        "by-labels",
        when={"labels": {"service": "orders", "severity": ["error", "critical"]}},
        verify=False,
    )
    by_category = remedy("by-category", when={"category": "resource_exhaustion", "check": "worker"})
    policy = FixPolicy(remediations=[by_check, by_labels, by_category])

    def names(subject: RemediationSubject) -> list[str]:
        return [remediation.name for remediation in remediations_for(policy, subject)]

    assert names(RemediationSubject(check="worker")) == ["by-check"]
    assert names(RemediationSubject(check="worker", category="resource_exhaustion")) == [
        "by-check",
        "by-category",
    ]
    assert names(RemediationSubject(labels={"service": "orders", "severity": "critical"})) == [
        "by-labels"
    ]
    assert names(RemediationSubject(labels={"service": "orders", "severity": "warning"})) == []
    assert names(RemediationSubject(labels={"severity": "critical"})) == []
    assert names(RemediationSubject(check="other")) == []


GUARDRAILS = [
    # (fields, recent runs (minutes ago), running targets, verdict, a reason)
    ({}, [], set(), "needs_approval", "requires_approval = true: an approver must approve the run"),
    ({"requires_approval": False}, [], set(), "run", "requires_approval = false"),
    ({"dry_run": True}, [], set(), "run", "dry_run = true: what would run is recorded"),
    ({}, [], {"restart"}, "refused", "a run on restart is in progress: one at a time"),
    ({"target": "worker"}, [], {"worker"}, "refused", "a run on worker is in progress"),
    (
        {},
        [5],
        set(),
        "refused",
        "it ran 5m ago, within its cooldown of 10m: not before 2026-03-02T12:05:00+00:00",
    ),
    (
        {"cooldown": "1m", "max_runs_per_hour": 2},
        [10, 50],
        set(),
        "refused",
        "2 runs in the last hour: max_runs_per_hour is 2",
    ),
    (
        {"cooldown": "1m", "max_runs_per_hour": 2},
        [10, 61],
        set(),
        "needs_approval",
        "1 of 2 runs in the last hour",
    ),
    ({"max_runs_per_hour": 0}, [], set(), "refused", "max_runs_per_hour = 0: it never runs"),
    ({}, [11], set(), "needs_approval", "it ran 11m ago, past its cooldown of 10m"),
]


@pytest.mark.parametrize(("fields", "ago", "running", "verdict", "reason"), GUARDRAILS)
def test_remediation_guardrails(
    fields: dict[str, object], ago: list[int], running: set[str], verdict: str, reason: str
) -> None:
    runs = [NOW - timedelta(minutes=m) for m in ago]
    decision = remediation_decision(remedy(**fields), runs, running, NOW)
    assert decision.verdict == verdict
    assert any(r.startswith(reason) for r in decision.reasons), decision.reasons
    assert decision.dry_run is bool(fields.get("dry_run"))


def test_every_guardrail_that_holds_it_back_is_a_reason() -> None:
    runs = [NOW - timedelta(minutes=1), NOW - timedelta(minutes=2), NOW - timedelta(minutes=3)]
    decision = remediation_decision(remedy(), runs, {"restart"}, NOW)
    assert decision.verdict == "refused"
    assert [r.split(":")[0] for r in decision.reasons] == [
        "a run on restart is in progress",
        "3 runs in the last hour",
        "it ran 1m ago, within its cooldown of 10m",
    ]


def past_run(run_id: int, state: str, verdict: str, verified: bool | None = None) -> RemediationRun:
    """A run of this down period, as the store reads it."""
    return RemediationRun.model_validate(
        {
            "id": run_id,
            "name": "restart",
            "target": "restart",
            "state": state,
            "trigger": "check worker is down",
            "requested_by": "mendline",
            "requested_at": NOW - timedelta(minutes=30),
            "verdict": verdict,
            "verified": verified,
            "subject": "check:worker",
            "episode_at": NOW - timedelta(hours=1),
        }
    )


RUN = RemediationDecision(verdict="run", reasons=["requires_approval = false"])
ASK = RemediationDecision(verdict="needs_approval", reasons=["requires_approval = true"])
HELD = RemediationDecision(verdict="refused", reasons=["it ran 5m ago, within its cooldown"])
STEPS = [
    # (decision, the down period's runs (newest first), step, a word of why)
    (RUN, [], "start", "requires_approval = false"),
    (ASK, [], "request", "requires_approval = true"),
    (HELD, [], "refuse", "within its cooldown"),
    (RUN, [past_run(3, "running", "run")], "none", "run 3 of this down period is running"),
    (HELD, [past_run(3, "requested", "needs_approval")], "none", "is requested"),
    (HELD, [past_run(4, "refused", "refused")], "none", "refused once in this down period"),
    (HELD, [past_run(4, "not_helped", "run", False)], "refuse", "within its cooldown"),
    (HELD, [past_run(4, "succeeded", "run", True)], "none", "run 4 helped"),
    (ASK, [past_run(5, "refused", "needs_approval")], "none", "a person was asked once"),
    (ASK, [past_run(5, "refused", "refused")], "request", "requires_approval = true"),
    (RUN, [past_run(6, "refused", "refused"), past_run(5, "not_helped", "run")], "start", ""),
]


@pytest.mark.parametrize(("decision", "episode", "step", "why"), STEPS)
def test_what_a_worker_records_of_a_decision_once_a_down_period(
    decision: RemediationDecision, episode: list[RemediationRun], step: str, why: str
) -> None:
    done, said = remediation_step(decision, episode)
    assert done == step
    assert why in said


# -- what one line at a time does not show -------------------------------------------------


def _added(path: str, *lines: str) -> str:
    """A hunk adding ``lines`` after line 9 of ``path`` (context on both sides)."""
    body = "".join(f"+{line}\n" for line in lines)
    return f"--- a/{path}\n+++ b/{path}\n@@ -9,2 +9,{2 + len(lines)} @@\n a = 1\n{body} b = 2\n"


@pytest.mark.parametrize(
    "lines",
    [
        ("import os", "x = os.", "     system('id')"),
        ("x = eval", "    (text)"),
        ("run(c, shell", "    =", "    True)"),
    ],
)
def test_a_deny_pattern_split_over_lines_denies_naming_the_hunk(lines: tuple[str, ...]) -> None:
    decision = decide(POLICY, candidate(patch=_added("app/x.py", *lines)), {})
    assert decision.verdict == "deny"
    assert (
        "src/app/x.py: hunk 1 adds lines that, joined, match the deny pattern"
        in (decision.reasons[0])
    )


def test_lines_that_join_into_nothing_denied_still_go_alone() -> None:
    patch = _added("app/x.py", "total = sum(", "    items)")
    assert decide(POLICY, candidate(patch=patch), {}).verdict == "auto"


@pytest.mark.parametrize("mode", ["120000", "160000"])
def test_a_symbolic_link_or_a_submodule_is_denied(mode: str) -> None:
    patch = (
        f"diff --git a/app/data b/app/data\nnew file mode {mode}\n"
        "--- /dev/null\n+++ b/app/data\n@@ -0,0 +1 @@\n+/etc\n"
    )
    decision = decide(POLICY, candidate(patch=patch), {})
    assert decision.verdict == "deny"
    assert decision.reasons == [
        f"src/app/data: new file mode {mode}: it makes a symbolic link or a submodule"
    ]


def test_a_mode_change_needs_a_person() -> None:
    patch = "diff --git a/app/x.py b/app/x.py\nold mode 100644\nnew mode 100755\n" + diff(
        "app/x.py", "y = 1", "y = 2"
    )
    decision = decide(POLICY, candidate(patch=patch), {})
    assert (decision.verdict, decision.approvals_needed) == ("approval", 1)
    assert decision.reasons == [
        "it changes the mode of src/app/x.py (git's mode lines): a mode change is applied"
        " only once a person approves"
    ]
