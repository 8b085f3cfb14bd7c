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
allocated (tracemalloc) and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import difflib
import json
import resource
import statistics
import sys
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
            before = len(llm.bodies)
            with_llm.append(await review_once(diff, contents, reviewer))
            calls = len(llm.bodies) - before
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


if __name__ == "__main__":
    asyncio.run(main())
