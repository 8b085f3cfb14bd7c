"""Self-healing: the time from a finding to a verified commit on a small repository, and how
much of it is mendline versus the verification commands.

Run: .venv/bin/python bench/fix.py [--fixes N]

A real repository (a package with real pytest tests) and N findings, each of a new issue,
each carrying the same kind of one-line patch the heuristic analyser writes. Three ways,
same run, same machine:

(1) baseline: the verification commands alone (byte-compile the changed file, `ruff check`
    it when ruff is installed, the repository's pytest run) in a plain copy of the checkout;
(2) the forges: `apply_fix` (worktree, place the patch, the same verification, commit, keep
    the branch), no database;
(3) the heal stage on the embedded PostgreSQL: finding stored -> one `Healer.pass_once()`
    proposes it by the policy (auto), claims it, applies, verifies and commits it (applied,
    every move audited).

mendline's own part is (3) minus (1); the forges' git work is (2) minus (1).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mendline.analyzers.grouping.scrubbing import Scrubber  # noqa: E402
from mendline.analyzers.policy import parse_policy  # noqa: E402
from mendline.devstack import EmbeddedPostgres  # noqa: E402
from mendline.ingest import prepare_record  # noqa: E402
from mendline.schemas.settings import load_settings  # noqa: E402
from mendline.sinks.forges import DeliveryPlan, apply_fix  # noqa: E402
from mendline.sinks.postgres import connect_findings, connect_fixes, connect_store  # noqa: E402
from mendline.stages.heal import Healer  # noqa: E402
from tests.db_helpers import fresh_database, patch_finding  # noqa: E402
from tests.git_helpers import change, checkout, make_repo, plan_with_tests  # noqa: E402
from tests.integration.event_factory import encode, make_event  # noqa: E402

PATCH = (
    "--- a/calc/core.py\n+++ b/calc/core.py\n@@ -9 +9 @@\n"
    "-    return table[key]\n+    return table.get(key)\n"
)


def baseline(repo: Path, where: Path, n: int) -> list[float]:
    """Seconds of the verification commands alone, in a plain copy of the checkout."""
    copy = where / "plain"
    shutil.copytree(repo, copy, ignore=shutil.ignore_patterns(".git"))
    commands = [[sys.executable, "-m", "py_compile", "calc/core.py"]]
    if shutil.which("ruff"):
        commands.append(["ruff", "check", "calc/core.py"])
    commands.append([sys.executable, "-m", "pytest"])
    times = []
    for _ in range(n):
        start = time.perf_counter()
        for argv in commands:
            subprocess.run(argv, cwd=copy, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return times


async def forges(repo: Path, where: Path, n: int) -> tuple[list[float], list[float]]:
    """Seconds of ``apply_fix`` per fix, and of its verification commands."""
    totals, verifying = [], []
    for i in range(n):
        start = time.perf_counter()
        outcome = await apply_fix(
            checkout(repo, where),
            change(PATCH, issue_id=1000 + i, fix_id=i + 1),
            verify_plan=plan_with_tests(),
            delivery=DeliveryPlan(),
        )
        totals.append(time.perf_counter() - start)
        assert outcome.result == "applied" and outcome.verification is not None, outcome
        verifying.append(sum(c.seconds for c in outcome.verification.commands))
    return totals, verifying


async def heal(repo: Path, where: Path, url: str, n: int) -> list[float]:
    """Seconds from a stored finding to its fix applied by one heal pass."""
    policy = parse_policy(
        f'[[repositories]]\nname = "calc"\npath = "{repo}"\n'
        f'test = ["{sys.executable}", "-m", "pytest"]\n'
        "[auto]\nmax_per_hour = 100000\n"
        '[[repositories.mappings]]\nstack_root = ""\nsource_root = ""\n',
        "bench.toml",
    )
    settings = load_settings(database_url=url, fix_work_root=where / "heal-work")
    events, findings = await connect_store(settings), await connect_findings(settings, 2)
    fixes = await connect_fixes(settings, origin="bench", size=4)
    healer = Healer(settings, policy, fixes, findings, owner="bench")
    times = []
    try:
        for i in range(n):
            prepared = prepare_record(encode(make_event(5000 + i)), Scrubber())
            await events.write([prepared])
            issue = await fixes.pool.fetchval(
                "SELECT issue_id FROM mendline.fingerprints WHERE hash = $1", prepared.fingerprint
            )
            finding = patch_finding(PATCH, fix_kind="style", severity="low")
            start = time.perf_counter()
            await findings.save(finding, issue_id=int(issue), cache_key=f"bench {i}")
            await healer.pass_once()
            times.append(time.perf_counter() - start)
        states = [f.state for f in await fixes.list(limit=n)]
        assert states == ["applied"] * n, states
    finally:
        for store in (events, findings, fixes):
            await store.pool.close()
    return times


def line(label: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"  {label:<44} median {statistics.median(ms):7.0f} ms   p95 {p95:7.0f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixes", type=int, default=12, help="fixes per way (default 12)")
    args = parser.parse_args()
    n = max(1, min(args.fixes, 100))
    with tempfile.TemporaryDirectory() as tmp, EmbeddedPostgres() as server:
        where = Path(tmp)
        repo = make_repo(where)
        plain = baseline(repo, where, n)
        applied, verifying = await forges(repo, where, n)
        async with fresh_database(server.url) as url:
            healed = await heal(repo, where, url, n)
    base, whole = statistics.median(plain), statistics.median(healed)
    print(f"a finding's one-line patch to a verified commit, {n} fixes each way:")
    print(line("(1) verification commands alone (baseline)", plain))
    print(line("(2) apply_fix: worktree, apply, verify, commit", applied))
    print(line("    of which its verification commands", verifying))
    print(line("(3) heal stage: propose, claim, apply, record", healed))
    print(
        f"  mendline's part of (3): {1000 * (whole - base):.0f} ms a fix"
        f" ({100 * (whole - base) / whole:.0f}% of the whole)"
    )
    print(
        f"  git and the forges' part of (2): {1000 * (statistics.median(applied) - base):.0f}"
        " ms a fix"
    )


if __name__ == "__main__":
    asyncio.run(main())
