"""Self-healing: the time from a finding to a verified commit on a small repository, and how
much of it is mendline versus the repository's own verification commands.

Run: .venv/bin/python bench/fix.py [--fixes N] [--budget SECONDS]

A real repository: a package of four modules with N functions among them and a pytest test of
each. Each function fails in a way the heuristic analyser has a one-line patch for (a missing
key: ``.get``; an empty iterator: ``next(it, None)``; a dict changed while iterated:
``list(d)``); each is called once so that it raises, the exception is made into an ErrorEvent
as the app side ships it, and the heuristic analyser's finding carries the patch. Three ways,
interleaved fix by fix (the machine is shared: noise falls on all three alike), after one
round of warm-up:

(1) baseline: the verification commands alone (the forges' own list: byte-compile the
    changed file, `ruff check` it when ruff is on the PATH, the repository's pytest run),
    run with subprocess in a fresh plain copy of the checkout;
(2) the forges: `apply_fix` (worktree, patch, the same verification, commit, branch kept),
    no database;
(3) the heal stage on the embedded PostgreSQL: the finding stored, then one
    `Healer.pass_once()`: proposed by the policy ([auto]), claimed, applied, verified,
    committed, recorded as applied with every move audited.

git's part of (2) and (3) is read from git's own trace (GIT_TRACE2_EVENT): the time each git
process mendline ran took, by what it was for. mendline's part is (3) minus (1), and (3)
less the verification commands it ran itself (the same fix's, so less noisy).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mendline.analyzers.grouping import Scrubber, culprit, title  # noqa: E402
from mendline.analyzers.policy import parse_policy  # noqa: E402
from mendline.analyzers.rootcause import HeuristicAnalyser  # noqa: E402
from mendline.devstack import EmbeddedPostgres  # noqa: E402
from mendline.ingest import prepare_record  # noqa: E402
from mendline.schemas.finding import Finding, IssueContext, IssueSummary  # noqa: E402
from mendline.schemas.fix import Verification  # noqa: E402
from mendline.schemas.settings import load_settings  # noqa: E402
from mendline.sinks.forges import DeliveryPlan, apply_fix, command_environment  # noqa: E402
from mendline.sinks.postgres import connect_findings, connect_fixes, connect_store  # noqa: E402
from mendline.stages.heal import Healer  # noqa: E402
from tests.analyzers.event_helpers import event_of  # noqa: E402
from tests.db_helpers import fresh_database  # noqa: E402
from tests.git_helpers import change, checkout, commit_all, git, plan_with_tests  # noqa: E402
from tests.integration.event_factory import encode  # noqa: E402

MODULES = ("orders", "customers", "stock", "prices")
TEST_COMMAND = (sys.executable, "-m", "pytest")

# -- the repository ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """One function of the package that fails: its source, the argument its test gives it
    and what it answers, and an argument that makes it raise."""

    module: str
    function: str
    source: str
    argument: object
    answer: object
    failing: object


def site(k: int) -> Site:
    """The k-th failing function: a missing key, an empty iterator or a dict changed while
    iterated, in turn, over the four modules."""
    module, shape = MODULES[k % len(MODULES)], k % 3
    if shape == 0:
        name = f"field_{k}"
        source = f'def {name}(record):\n    return record["key_{k}"]\n'
        return Site(module, name, source, {f"key_{k}": k}, k, {})
    if shape == 1:
        name = f"first_{k}"
        source = f"def {name}(items):\n    return next(iter(items))\n"
        return Site(module, name, source, [k, 1], k, [])
    name = f"non_empty_{k}"
    source = (
        f"def {name}(table):\n    for key in table:\n        if not table[key]:\n"
        "            del table[key]\n    return table\n"
    )
    return Site(module, name, source, {"a": k + 1}, {"a": k + 1}, {0: 0, 1: 1})


def make_shop(where: Path, sites: list[Site]) -> Path:
    """A repository on ``main``: the package ``shop`` with ``sites`` among its modules, and
    a test module for each with a passing test of each site."""
    repo = where / "repo"
    (repo / "shop").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "shop" / "__init__.py").write_text('"""A small shop."""\n')
    for module in MODULES:
        mine = [s for s in sites if s.module == module]
        body = "\n\n".join(s.source for s in mine)
        (repo / "shop" / f"{module}.py").write_text(f'"""The shop\'s {module}."""\n\n\n{body}')
        names = ", ".join(s.function for s in mine)
        tests = "".join(
            f"\n\ndef test_{s.function}():\n"
            f"    assert {s.function}({s.argument!r}) == {s.answer!r}\n"
            for s in mine
        )
        (repo / "tests" / f"test_{module}.py").write_text(
            f"from shop.{module} import {names}\n{tests}"
        )
    (repo / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider -q\n")
    (repo / ".gitignore").write_text("__pycache__/\n")
    git(repo, "init", "-q", "-b", "main")
    commit_all(repo, "shop")
    return repo


@dataclass(frozen=True)
class Case:
    """A site's failure as the app ships it, and the heuristic analyser's finding of it."""

    site: Site
    event: dict[str, Any]
    finding: Finding
    path: str


def cases(repo: Path, sites: list[Site]) -> list[Case]:
    """Each site called so that it raises, from the repository's own package, diagnosed."""
    analyser = HeuristicAnalyser()
    found = []
    sys.path.insert(0, str(repo))
    sys.dont_write_bytecode = True  # the checkout stays as committed
    try:
        for s in sites:
            function = getattr(importlib.import_module(f"shop.{s.module}"), s.function)
            try:
                function(s.failing)
            except Exception as exc:
                event = event_of(exc, service="shop", logger=f"shop.{s.module}")
            else:
                raise AssertionError(f"{s.function}({s.failing!r}) did not raise")
            summary = IssueSummary(
                id=1, service="shop", title=title(event), culprit=culprit(event), level="error"
            )
            finding = analyser.diagnose(IssueContext(issue=summary, events=[event]))
            assert finding.fix_patch is not None, (s, finding)
            found.append(Case(s, event, finding, f"shop/{s.module}.py"))
    finally:
        sys.path.remove(str(repo))
        sys.dont_write_bytecode = False
        for name in [n for n in sys.modules if n == "shop" or n.startswith("shop.")]:
            del sys.modules[name]
    return found


# -- git's part, from its own trace -----------------------------------------------------------

#: What a git process was for, by its command (and a worktree's, by its subcommand).
PHASES = {
    "worktree add": "worktree add",
    "worktree remove": "worktree remove, prune; branch -D",
    "worktree prune": "worktree remove, prune; branch -D",
    "branch": "worktree remove, prune; branch -D",
    "apply": "patch: cat-file, apply --check, apply, diff",
    "cat-file": "patch: cat-file, apply --check, apply, diff",
    "diff": "patch: cat-file, apply --check, apply, diff",
    "commit": "commit; show (the pull request's diff)",
    "show": "commit; show (the pull request's diff)",
}
LOOKUPS = "lookups: rev-parse"


@contextlib.contextmanager
def traced(path: Path) -> Iterator[None]:
    """git processes started meanwhile append their trace2 events to ``path``."""
    os.environ["GIT_TRACE2_EVENT"] = str(path)
    try:
        yield
    finally:
        del os.environ["GIT_TRACE2_EVENT"]


def git_seconds(path: Path) -> tuple[dict[str, float], int]:
    """Seconds of mendline's git processes in the trace at ``path`` by phase, and how many
    there were. A process's time is its own (from its start to its exit, as git measures);
    the children git starts are inside it."""
    argv: dict[str, list[str]] = {}
    took: dict[str, float] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        event = json.loads(line)
        sid = event["sid"]
        if "/" in sid:  # a child of a git process: counted in its parent
            continue
        if event["event"] == "start":
            argv[sid] = event["argv"]
        elif event["event"] in ("exit", "atexit"):
            took[sid] = max(took.get(sid, 0.0), event["t_abs"])
    phases: dict[str, float] = {}
    count = 0
    for sid, args in argv.items():
        if "core.hooksPath=/dev/null" not in args:  # not mendline's (the checks' own git)
            continue
        command = _command(args)
        phase = PHASES.get(command, LOOKUPS)
        phases[phase] = phases.get(phase, 0.0) + took.get(sid, 0.0)
        count += 1
    return phases, count


def _command(argv: list[str]) -> str:
    rest = argv[1:]
    while rest and rest[0] == "-c":
        rest = rest[2:]
    return " ".join(rest[:2]) if rest[:1] == ["worktree"] else (rest[0] if rest else "")


# -- the three ways ---------------------------------------------------------------------------


@dataclass
class Way:
    """Per fix: seconds in all, of the verification commands, and of git by phase."""

    totals: list[float] = field(default_factory=list)
    verifying: list[float] = field(default_factory=list)
    git: list[dict[str, float]] = field(default_factory=list)
    processes: list[int] = field(default_factory=list)

    def add(self, total: float, verification: Verification | None, trace: Path) -> None:
        assert verification is not None and verification.passed, verification
        phases, count = git_seconds(trace)
        self.totals.append(total)
        self.verifying.append(sum(c.seconds for c in verification.commands))
        self.git.append(phases)
        self.processes.append(count)

    def gits(self) -> list[float]:
        return [sum(p.values()) for p in self.git]

    def rest(self) -> list[float]:
        return [t - v - g for t, v, g in zip(self.totals, self.verifying, self.gits(), strict=True)]


def baseline(repo: Path, where: Path, case: Case) -> float:
    """Seconds of the forges' verification commands for ``case`` alone, run one after the
    other with subprocess as the forges start them (the same environment, no stdin, output
    through one pipe, a session of their own) in a fresh plain copy of the checkout (no
    bytecode cached yet, as in a new worktree)."""
    copy = where / "plain"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(repo, copy, ignore=shutil.ignore_patterns(".git", "__pycache__"))
    env = command_environment(os.environ) | {"PWD": str(copy)}
    commands = plan_with_tests().commands([case.path], env.get("PATH"))
    start = time.perf_counter()
    for argv in commands:
        ran = subprocess.run(
            argv,
            cwd=copy,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            check=False,
        )
        assert ran.returncode == 0, (argv, ran.stdout)
    return time.perf_counter() - start


async def forges(repo: Path, where: Path, case: Case, number: int, way: Way) -> None:
    """``apply_fix`` of ``case``'s patch, its branch kept; no database."""
    trace = where / "traces" / f"forges-{number}.json"
    with traced(trace):
        start = time.perf_counter()
        outcome = await apply_fix(
            checkout(repo, where),
            change(
                case.finding.fix_patch,
                issue_id=100_000 + number,
                fix_id=number,
                finding=case.finding,
                issue_title=title(case.event),
            ),
            verify_plan=plan_with_tests(),
            delivery=DeliveryPlan(),
        )
        elapsed = time.perf_counter() - start
    assert outcome.result == "applied", outcome
    way.add(elapsed, outcome.verification, trace)


POLICY = """
[[repositories]]
name = "shop"
path = {repo}
test = {test}

[[repositories.mappings]]
stack_root = "shop."
source_root = "shop/"

[auto]
kinds = ["guard", "logic"]
max_per_hour = 100000
"""


class Heal:
    """The heal stage's worker on its stores, over a fresh database."""

    def __init__(self, repo: Path, where: Path, url: str) -> None:
        self.where = where
        self.settings = load_settings(database_url=url, fix_work_root=where / "heal-work")
        self.policy = parse_policy(
            POLICY.format(repo=json.dumps(str(repo)), test=json.dumps(list(TEST_COMMAND))),
            "bench.toml",
        )

    async def __aenter__(self) -> Heal:
        self.events = await connect_store(self.settings)
        self.findings = await connect_findings(self.settings, 2)
        self.fixes = await connect_fixes(self.settings, origin="bench", size=4)
        self.healer = Healer(self.settings, self.policy, self.fixes, self.findings, owner="bench")
        return self

    async def __aexit__(self, *exc: object) -> None:
        for store in (self.events, self.findings, self.fixes):
            await store.pool.close()

    async def idle(self, rounds: int = 5) -> float:
        """Median seconds of a heal pass that finds nothing to propose or apply."""
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            await self.healer.pass_once()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    async def fix(self, case: Case, number: int, way: Way) -> None:
        """The case's event stored (its new issue), then timed: its finding stored and one
        pass of the heal stage, which must leave its fix applied."""
        prepared = prepare_record(encode(case.event), Scrubber())
        await self.events.write([prepared])
        issue = int(
            await self.fixes.pool.fetchval(
                "SELECT issue_id FROM mendline.fingerprints WHERE hash = $1", prepared.fingerprint
            )
        )
        trace = self.where / "traces" / f"heal-{number}.json"
        with traced(trace):
            start = time.perf_counter()
            await self.findings.save(case.finding, issue_id=issue, cache_key=f"bench {number}")
            await self.healer.pass_once()
            elapsed = time.perf_counter() - start
        fixes = await self.fixes.list(issue_id=issue, limit=2)
        assert len(fixes) == 1 and fixes[0].state == "applied", fixes
        assert fixes[0].decision.verdict == "auto", fixes[0].decision
        way.add(elapsed, fixes[0].verification, trace)


# -- the report -------------------------------------------------------------------------------


def figures(seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"{statistics.median(ms):8.1f} {p95:8.1f}"


def report(
    n: int,
    plain: list[float],
    ways: dict[str, Way],
    commands: list[list[str]],
    idle: tuple[float, float, int],
) -> None:
    shown = "; ".join(
        " ".join(Path(a).name if i == 0 else a for i, a in enumerate(c)) for c in commands
    )
    print(f"a finding's one-line patch to a verified commit, {n} fixes each way (interleaved):")
    print(f"  the verification commands: {shown}")
    print(f"  {'':<52} {'median':>8} {'p95':>8}  ms")
    print(f"  {'(1) verification commands alone (baseline)':<52} {figures(plain)}")
    labels = {
        "forges": "(2) apply_fix: worktree, patch, verify, commit",
        "heal": "(3) heal stage: stored -> proposed -> applied",
    }
    for key, way in ways.items():
        print(f"  {labels[key]:<52} {figures(way.totals)}")
        print(f"  {'    its verification commands':<52} {figures(way.verifying)}")
        count = statistics.median(way.processes)
        print(f"  {f'    git, {count:.0f} processes a fix':<52} {figures(way.gits())}")
        for phase in dict.fromkeys([*PHASES.values(), LOOKUPS]):
            each = [p.get(phase, 0.0) for p in way.git]
            print(f"  {'      ' + phase:<52} {figures(each)}")
        rest = "    the rest: Python, process starts" + (", PostgreSQL" if key == "heal" else "")
        print(f"  {rest:<52} {figures(way.rest())}")
    base = statistics.median(plain)
    for key, mark in (("forges", "(2)"), ("heal", "(3)")):
        way = ways[key]
        whole = statistics.median(way.totals)
        inside = [t - v for t, v in zip(way.totals, way.verifying, strict=True)]
        share = [(t - v) / t for t, v in zip(way.totals, way.verifying, strict=True)]
        print(
            f"  mendline's part of {mark}: {mark} - (1) = {1000 * (whole - base):.0f} ms a fix"
            f" ({100 * (whole - base) / whole:.0f}% of {mark});"
            f" {mark} less its own verification commands {1000 * statistics.median(inside):.0f}"
            f" ms ({100 * statistics.median(share):.0f}%)"
        )
    before, after, applied = idle
    print(
        f"  a heal pass with nothing to do: {1000 * before:.1f} ms with no fix applied,"
        f" {1000 * after:.1f} ms with {applied} (deployments are looked for fix by fix)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixes", type=int, default=20, help="fixes each way (default 20)")
    parser.add_argument(
        "--budget", type=float, default=150, help="stop adding fixes after this many seconds"
    )
    args = parser.parse_args()
    n = max(1, min(args.fixes, 100))
    deadline = time.monotonic() + args.budget
    # The interpreter's own scripts (ruff among them) are on the PATH of the checks, as in
    # the environment mendline runs in.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["GIT_TRACE2_EVENT_BRIEF"] = "1"
    os.environ["GIT_TRACE2_EVENT_NESTING"] = "1"
    plain: list[float] = []
    ways = {"forges": Way(), "heal": Way()}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedPostgres() as server:
        where = Path(tmp)
        (where / "traces").mkdir()
        sites = [site(k) for k in range(n + 1)]
        repo = make_shop(where, sites)
        found = cases(repo, sites)
        env = command_environment(os.environ)
        commands = plan_with_tests().commands([found[0].path], env.get("PATH"))
        async with fresh_database(server.url) as url, Heal(repo, where, url) as heal:
            warm = Way(), Way()
            idle_before = await heal.idle()
            for number, case in enumerate(found):
                if number and time.monotonic() > deadline:
                    print(f"  (the budget of {args.budget:g} s ran out after {number - 1} fixes)")
                    break
                first = number == 0  # warm-up: not counted
                plain_s = baseline(repo, where, case)
                await forges(repo, where, case, number, warm[0] if first else ways["forges"])
                await heal.fix(case, number, warm[1] if first else ways["heal"])
                if not first:
                    plain.append(plain_s)
            idle = (idle_before, await heal.idle(), len(plain) + 1)
    report(len(plain), plain, ways, commands, idle)


if __name__ == "__main__":
    asyncio.run(main())
