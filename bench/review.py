"""`mendline review` on a 1,000-line diff: without the LLM, and with the loopback LLM; the
memory it takes.

Run: .venv/bin/python bench/review.py [--lines 1000] [--rounds 5]

The diff adds whole modules of mendline's own code (real Python, every line added) until it
holds ``--lines`` added lines, as a new-feature pull request does. Each round times, in the
same process: the baseline (reading the files: ``ast.parse`` of each, the least any review
of them costs), the review without the LLM (read_diff, the built-in and learned rules, the
changed functions; no production source), and the review with the LLM against a loopback
OpenAI-compatible server that answers at once (its baseline: the same number of bare chat
calls to it). The median of the rounds is printed, with the peak of memory the review
allocated (tracemalloc) and the process's peak RSS. Last, the whole command as CI runs it:
``mendline review --no-production`` in a new process on a real git repository whose last
commit adds those files, against ``mendline --help`` (starting Python and the command line)
as its baseline.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import difflib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mendline.analyzers.review import LLMReviewer, read_diff, review_files  # noqa: E402
from mendline.analyzers.rootcause import ChatClient, MemoryLedger  # noqa: E402
from tests.llm_server import FakeLLM, Reply  # noqa: E402


def diff_of(lines: int) -> tuple[str, dict[str, str]]:
    """A diff adding whole modules of mendline's own code, ``lines`` added lines or a few
    more, and the files it adds."""
    contents: dict[str, str] = {}
    added = 0
    for path in sorted((ROOT / "sinks").rglob("*.py")):
        text = path.read_text()
        if added >= lines:
            break
        contents[str(path.relative_to(ROOT))] = text
        added += len(text.splitlines())
    parts = [
        "".join(
            difflib.unified_diff([], text.splitlines(keepends=True), "/dev/null", f"b/{name}", n=3)
        )
        for name, text in contents.items()
    ]
    return "".join(parts), contents


def baseline(contents: dict[str, str]) -> float:
    started = time.perf_counter()
    for name, text in contents.items():
        ast.parse(text, filename=name)
    return time.perf_counter() - started


async def review_once(diff: str, contents: dict[str, str], llm: LLMReviewer | None) -> float:
    started = time.perf_counter()
    files = read_diff(diff)
    review = await review_files(
        files, dict(contents), production=None, production_note="bench", llm=llm
    )
    elapsed = time.perf_counter() - started
    assert review.files and not review.skipped, review.skipped
    return elapsed


async def bare_calls(client: ChatClient, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await client.complete([{"role": "user", "content": "review"}])
    return time.perf_counter() - started


def run(argv: list[str], cwd: Path | None = None) -> float:
    """Seconds ``argv`` takes to run, checked."""
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def command_line(contents: dict[str, str], rounds: int) -> None:
    """The review as a CI job runs it, in a new process, on a real repository."""
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.test"]
    with tempfile.TemporaryDirectory() as folder:
        repo = Path(folder)
        subprocess.run([*git, "init", "-q", "-b", "main"], cwd=repo, check=True)
        subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "base"], cwd=repo, check=True)
        for name, text in contents.items():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            (repo / name).write_text(text)
        subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
        subprocess.run([*git, "commit", "-q", "-m", "the files"], cwd=repo, check=True)
        mendline = [sys.executable, "-m", "mendline"]
        review = [*mendline, "review", "--repo", str(repo), "--base", "HEAD~1", "--no-production"]
        os.environ.pop("MENDLINE_DATABASE_URL", None)
        start = statistics.median(run([*mendline, "--help"]) for _ in range(rounds))
        whole = statistics.median(run(review) for _ in range(rounds))
    print(f"mendline --help in a new process (baseline): {start * 1000:6.0f} ms")
    print(
        f"mendline review --no-production, the range:  {whole * 1000:6.0f} ms"
        f"  ({whole / start:.1f}x the baseline)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    diff, contents = diff_of(args.lines)
    added = sum(len(f.added) for f in read_diff(diff))
    print(f"diff: {len(contents)} files, {added} added lines, {len(diff):,} bytes")

    base, plain = [], []
    for _ in range(args.rounds):
        base.append(baseline(contents))
        plain.append(await review_once(diff, contents, None))
    b, p = statistics.median(base), statistics.median(plain)
    print(f"reading the files (ast.parse, baseline): {b * 1000:8.1f} ms")
    print(
        f"review without the LLM:                  {p * 1000:8.1f} ms  ({p / b:.1f}x the baseline)"
    )

    tracemalloc.start()
    await review_once(diff, contents, None)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"memory the review allocated at its peak: {peak / 2**20:8.1f} MiB")

    llm = FakeLLM().start()
    try:
        llm.default = Reply(content=json.dumps({"comments": []}))
        with_llm, bare = [], []
        for _ in range(args.rounds):
            client = ChatClient(llm.url, "bench-model")
            reviewer = LLMReviewer(client, ledger=MemoryLedger())
            before = len(llm.requests)
            with_llm.append(await review_once(diff, contents, reviewer))
            calls = len(llm.requests) - before
            bare.append(await bare_calls(client, calls))
            await client.aclose()
        w, c = statistics.median(with_llm), statistics.median(bare)
        print(
            f"review with the loopback LLM:            {w * 1000:8.1f} ms"
            f"  ({calls} calls; the same bare calls: {c * 1000:.1f} ms)"
        )
    finally:
        llm.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the process:                 {rss:8.1f} MiB")
    command_line(contents, args.rounds)


if __name__ == "__main__":
    asyncio.run(main())
